package rollout

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Change is a new pod template the rollout applies itself, given as
// images, environment variables, a patch or a manifest. Exactly one way
// to change the template is needed; images and env combine.
type Change struct {
	// Images maps container names to new images (--image NAME=IMAGE).
	Images map[string]string `json:"images,omitempty"`
	// Env sets (NAME=VALUE) or removes (NAME-) variables in every
	// container, or only in Container when set.
	Env []EnvChange `json:"env,omitempty"`
	// Container restricts Env to one container.
	Container string `json:"container,omitempty"`
	// Patch is a strategic merge patch of the StatefulSet (JSON or YAML)
	// that may change only spec.template.
	Patch string `json:"patch,omitempty"`
	// Template is the pod template of a manifest (-f).
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`
	// Source names the manifest, for messages.
	Source string `json:"source,omitempty"`
}

// EnvChange sets or removes one variable.
type EnvChange struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Remove bool   `json:"remove,omitempty"`
}

// Empty reports whether the change changes nothing.
func (c *Change) Empty() bool {
	return c == nil || (len(c.Images) == 0 && len(c.Env) == 0 && c.Patch == "" && c.Template == nil)
}

// Describe lists the change in a few words per item, for the plan.
func (c *Change) Describe() []string {
	if c.Empty() {
		return nil
	}
	var out []string
	names := make([]string, 0, len(c.Images))
	for n := range c.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, fmt.Sprintf("image of container %s: %s", n, c.Images[n]))
	}
	for _, e := range c.Env {
		where := "every container"
		if c.Container != "" {
			where = "container " + c.Container
		}
		if e.Remove {
			out = append(out, fmt.Sprintf("remove env %s from %s", e.Name, where))
		} else {
			out = append(out, fmt.Sprintf("set env %s in %s", e.Name, where))
		}
	}
	if c.Patch != "" {
		out = append(out, "patch of the pod template")
	}
	if c.Template != nil {
		src := c.Source
		if src == "" {
			src = "the manifest"
		}
		out = append(out, "pod template from "+src)
	}
	return out
}

// ParseImages parses --image values "CONTAINER=IMAGE".
func ParseImages(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, item := range items {
		name, image, ok := strings.Cut(item, "=")
		name, image = strings.TrimSpace(name), strings.TrimSpace(image)
		if !ok || name == "" || image == "" {
			return nil, fmt.Errorf("--image %q: use CONTAINER=IMAGE, e.g. --image postgres=postgres:16.4", item)
		}
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return nil, fmt.Errorf("--image %q: %q is not a container name: %s", item, name, strings.Join(errs, "; "))
		}
		if err := ValidateImage(image); err != nil {
			return nil, fmt.Errorf("--image %q: %w", item, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--image names container %s twice", name)
		}
		out[name] = image
	}
	return out, nil
}

// imageReference is the grammar of an image reference (registry/path,
// optional tag, optional digest), as container runtimes parse it.
var imageReference = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?` +
	`[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*` +
	`(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

// ValidateImage checks that image is a well-formed image reference.
func ValidateImage(image string) error {
	if len(image) > 255+128 || !imageReference.MatchString(image) {
		return fmt.Errorf("%q is not a valid image reference (expected e.g. registry.example.com/team/app:1.2 or app@sha256:<digest>)", image)
	}
	return nil
}

// ParseEnv parses --env values: NAME=VALUE sets, NAME- removes.
func ParseEnv(items []string) ([]EnvChange, error) {
	var out []EnvChange
	seen := map[string]bool{}
	for _, item := range items {
		var e EnvChange
		if name, value, ok := strings.Cut(item, "="); ok {
			e = EnvChange{Name: name, Value: value}
		} else if name, ok := strings.CutSuffix(item, "-"); ok {
			e = EnvChange{Name: name, Remove: true}
		} else {
			return nil, fmt.Errorf("--env %q: use NAME=VALUE to set or NAME- to remove", item)
		}
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 || e.Name == "" {
			return nil, fmt.Errorf("--env %q: %q is not a valid variable name", item, e.Name)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("--env names %s twice", e.Name)
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	return out, nil
}

// ParsePatch checks that a --patch is a JSON or YAML object and returns it
// as JSON.
func ParsePatch(patch string) (string, error) {
	raw, err := yaml.YAMLToJSON([]byte(patch))
	if err != nil {
		return "", fmt.Errorf("--patch is neither JSON nor YAML: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return "", fmt.Errorf(`--patch must be an object, e.g. {"spec":{"template":{"metadata":{"annotations":{"config-hash":"abc"}}}}}`)
	}
	return string(raw), nil
}

// ParseManifest reads a StatefulSet manifest (-f) and returns its pod
// template. The manifest must be one StatefulSet named name (when it has
// a name) in namespace (when it has one); only its pod template is used.
func ParseManifest(data []byte, source, name, namespace string) (*corev1.PodTemplateSpec, error) {
	var sts appsv1.StatefulSet
	if err := yaml.UnmarshalStrict(data, &sts); err != nil {
		if err2 := yaml.Unmarshal(data, &sts); err2 != nil {
			return nil, fmt.Errorf("%s is not a StatefulSet manifest: %w", source, err2)
		}
		return nil, fmt.Errorf("%s: %w (one StatefulSet per file, no unknown fields)", source, err)
	}
	if sts.Kind != "StatefulSet" {
		return nil, fmt.Errorf("%s holds a %q, not a StatefulSet", source, sts.Kind)
	}
	if sts.APIVersion != "" && sts.APIVersion != "apps/v1" {
		return nil, fmt.Errorf("%s has apiVersion %q; use apps/v1", source, sts.APIVersion)
	}
	if sts.Name != "" && sts.Name != name {
		return nil, fmt.Errorf("%s describes statefulset %s, not %s", source, sts.Name, name)
	}
	if sts.Namespace != "" && namespace != "" && sts.Namespace != namespace {
		return nil, fmt.Errorf("%s is for namespace %s, not %s (use -n %s)", source, sts.Namespace, namespace, sts.Namespace)
	}
	if len(sts.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%s has no containers in spec.template", source)
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		if err := ValidateImage(c.Image); err != nil {
			return nil, fmt.Errorf("%s: container %s: %w", source, c.Name, err)
		}
	}
	t := sts.Spec.Template
	return &t, nil
}

// Apply returns the StatefulSet's pod template with the change made. It
// refuses changes that name unknown containers or touch anything but the
// pod template.
func (c *Change) Apply(sts *appsv1.StatefulSet) (*corev1.PodTemplateSpec, error) {
	t := sts.Spec.Template.DeepCopy()
	if c.Template != nil {
		t = c.Template.DeepCopy()
		// The selector must keep matching the pods.
		if !labelsMatch(sts, t) {
			return nil, fmt.Errorf("the pod template of %s does not carry the labels of the selector of statefulset %s", c.sourceName(), sts.Name)
		}
	}
	if c.Patch != "" {
		patched, err := patchTemplate(sts, c.Patch)
		if err != nil {
			return nil, err
		}
		t = patched
	}
	if len(c.Images) > 0 {
		known := containerNames(t)
		for name, image := range c.Images {
			found := false
			for i := range t.Spec.Containers {
				if t.Spec.Containers[i].Name == name {
					t.Spec.Containers[i].Image, found = image, true
				}
			}
			for i := range t.Spec.InitContainers {
				if t.Spec.InitContainers[i].Name == name {
					t.Spec.InitContainers[i].Image, found = image, true
				}
			}
			if !found {
				return nil, fmt.Errorf("statefulset %s has no container %q (containers: %s)", sts.Name, name, strings.Join(known, ", "))
			}
		}
	}
	if len(c.Env) > 0 {
		matched := false
		for i := range t.Spec.Containers {
			ct := &t.Spec.Containers[i]
			if c.Container != "" && ct.Name != c.Container {
				continue
			}
			matched = true
			ct.Env = applyEnv(ct.Env, c.Env)
		}
		if !matched {
			return nil, fmt.Errorf("statefulset %s has no container %q (containers: %s)", sts.Name, c.Container, strings.Join(containerNames(t), ", "))
		}
	}
	for _, ct := range append(append([]corev1.Container(nil), t.Spec.InitContainers...), t.Spec.Containers...) {
		if err := ValidateImage(ct.Image); err != nil && !hasImage(&sts.Spec.Template, ct.Image) {
			return nil, fmt.Errorf("container %s: %w", ct.Name, err)
		}
	}
	return t, nil
}

// hasImage reports whether the template already runs image: a rollout
// does not judge images it did not introduce.
func hasImage(t *corev1.PodTemplateSpec, image string) bool {
	for _, ct := range append(append([]corev1.Container(nil), t.Spec.InitContainers...), t.Spec.Containers...) {
		if ct.Image == image {
			return true
		}
	}
	return false
}

func (c *Change) sourceName() string {
	if c.Source != "" {
		return c.Source
	}
	return "the manifest"
}

func labelsMatch(sts *appsv1.StatefulSet, t *corev1.PodTemplateSpec) bool {
	if sts.Spec.Selector == nil {
		return true
	}
	for k, v := range sts.Spec.Selector.MatchLabels {
		if t.Labels[k] != v {
			return false
		}
	}
	return true
}

func containerNames(t *corev1.PodTemplateSpec) []string {
	var names []string
	for _, c := range t.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range t.Spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

func applyEnv(env []corev1.EnvVar, changes []EnvChange) []corev1.EnvVar {
	out := append([]corev1.EnvVar(nil), env...)
	for _, ch := range changes {
		idx := -1
		for i := range out {
			if out[i].Name == ch.Name {
				idx = i
				break
			}
		}
		switch {
		case ch.Remove && idx >= 0:
			out = append(out[:idx], out[idx+1:]...)
		case ch.Remove:
		case idx >= 0:
			out[idx] = corev1.EnvVar{Name: ch.Name, Value: ch.Value}
		default:
			out = append(out, corev1.EnvVar{Name: ch.Name, Value: ch.Value})
		}
	}
	return out
}

// patchTemplate applies a strategic merge patch to the StatefulSet and
// returns the resulting template; a patch that changes anything else is
// refused, since a rollout only rolls out pod templates.
func patchTemplate(sts *appsv1.StatefulSet, patch string) (*corev1.PodTemplateSpec, error) {
	orig, err := json.Marshal(sts)
	if err != nil {
		return nil, err
	}
	out, err := strategicpatch.StrategicMergePatch(orig, []byte(patch), &appsv1.StatefulSet{})
	if err != nil {
		return nil, fmt.Errorf("--patch does not apply to statefulset %s: %w", sts.Name, err)
	}
	var patched appsv1.StatefulSet
	if err := json.Unmarshal(out, &patched); err != nil {
		return nil, fmt.Errorf("--patch gives an invalid statefulset: %w", err)
	}
	rest := patched.DeepCopy()
	rest.Spec.Template = sts.Spec.Template
	if !equality.Semantic.DeepEqual(rest.Spec, sts.Spec) || !equality.Semantic.DeepEqual(rest.ObjectMeta, sts.ObjectMeta) {
		return nil, fmt.Errorf("--patch changes more than spec.template; a rollout only rolls out the pod template (change other fields with kubectl patch)")
	}
	if equality.Semantic.DeepEqual(patched.Spec.Template, sts.Spec.Template) {
		return nil, fmt.Errorf("--patch does not change the pod template of statefulset %s", sts.Name)
	}
	return &patched.Spec.Template, nil
}
