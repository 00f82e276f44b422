package util

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// APIVersion is the group and version of the documents kubectl-sts prints.
const APIVersion = "kubectl-sts.io/v1alpha1"

// OutputFlags is the one -o flag set of every command: kubectl's printers
// from cli-runtime's PrintFlags (json, yaml, name, jsonpath, go-template
// and their -file forms) plus the command's own human formats (a table
// and wide, or text).
type OutputFlags struct {
	// Format is the value of -o.
	Format string
	// Own are the command's own formats; the first is the default.
	Own []string
	// JSONLines says that -o json is a stream of JSON lines (the plan,
	// one object per event, the result) rather than one document.
	JSONLines bool

	print *genericclioptions.PrintFlags
}

// NewOutputFlags returns the flags of a command whose own formats are own
// (the first one is the default).
func NewOutputFlags(own ...string) *OutputFlags {
	f := &OutputFlags{Own: own, print: genericclioptions.NewPrintFlags("")}
	if len(own) > 0 {
		f.Format = own[0]
	}
	f.print.OutputFormat = &f.Format
	return f
}

// NewWorkflowOutputFlags returns the flags of a workflow: text by default,
// JSON lines for -o json, and kubectl's printers for the document the
// workflow ends with.
func NewWorkflowOutputFlags() *OutputFlags {
	f := NewOutputFlags("text")
	f.JSONLines = true
	return f
}

// AddFlags binds -o and the template flags kubectl binds with it.
func (f *OutputFlags) AddFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	f.print.NamePrintFlags.AddFlags(cmd)
	f.print.TemplatePrinterFlags.AddFlags(cmd)
	fl.StringVarP(&f.Format, "output", "o", f.Format, f.usage())
	f.print.OutputFlagSpecified = func() bool { return cmd.Flag("output").Changed }
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return f.formats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// formats are the values -o accepts, the command's own first, for
// completion as kubectl offers them.
func (f *OutputFlags) formats() []string {
	out := append([]string(nil), f.Own...)
	for _, x := range f.print.AllowedFormats() {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func (f *OutputFlags) usage() string {
	kinds := append([]string(nil), f.Own...)
	kinds = append(kinds, "json", "yaml", "name", "jsonpath=...", "jsonpath-file=...", "go-template=...", "go-template-file=...")
	s := "Output format: " + strings.Join(kinds, ", ")
	if f.JSONLines {
		s += ". json is JSON lines (the plan, one object per event, the result); the other printers print the document the command ends with (the plan on a dry run) and send progress to standard error"
	}
	return s
}

// Human reports whether the output is the command's own format.
func (f *OutputFlags) Human() bool {
	return f.Format == "" || slices.Contains(f.Own, f.Format)
}

// Is reports whether -o names format.
func (f *OutputFlags) Is(format string) bool { return f.Format == format }

// JSON reports -o json.
func (f *OutputFlags) JSON() bool { return f.Format == "json" }

// Printer reports whether a kubectl printer prints the output: every
// format that is not the command's own, except JSON lines.
func (f *OutputFlags) Printer() bool { return !f.Human() && !(f.JSONLines && f.JSON()) }

// Validate refuses an unknown format or a template that does not parse,
// with kubectl's message, before anything is read.
func (f *OutputFlags) Validate() error {
	if f.Format == "" && len(f.Own) > 0 {
		f.Format = f.Own[0]
	}
	if f.Human() {
		return nil
	}
	if _, err := f.toPrinter(); err != nil {
		if genericclioptions.IsNoCompatiblePrinterError(err) {
			allowed := append(f.print.AllowedFormats(), f.Own...)
			sort.Strings(allowed)
			return UsageErrorf("unable to match a printer suitable for the output format %q, allowed formats are: %s", f.Format, strings.Join(allowed, ","))
		}
		return UsageErrorf("-o %s: %v", f.Format, err)
	}
	return nil
}

func (f *OutputFlags) toPrinter() (printers.ResourcePrinter, error) {
	return f.print.ToPrinter()
}

// Print writes doc with the selected printer. doc is a JSON-tagged model;
// kind names it (it is printed under apiVersion kubectl-sts.io/v1alpha1
// unless the model says otherwise). names are the objects -o name prints
// ("statefulset.apps/db"), in order.
func (f *OutputFlags) Print(w io.Writer, kind string, doc any, names ...Ref) error {
	p, err := f.toPrinter()
	if err != nil {
		return UsageErrorf("%v", err)
	}
	if f.Format == "name" {
		for _, n := range names {
			if err := p.PrintObj(n.object(), w); err != nil {
				return err
			}
		}
		return nil
	}
	return p.PrintObj(&Document{Kind: kind, Value: doc}, w)
}

// Ref names an object for -o name.
type Ref struct {
	GroupVersionKind schema.GroupVersionKind
	Namespace, Name  string
}

// StatefulSetRef is the Ref of a StatefulSet.
func StatefulSetRef(namespace, name string) Ref {
	return Ref{GroupVersionKind: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, Namespace: namespace, Name: name}
}

func (r Ref) object() runtime.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.GroupVersionKind)
	u.SetNamespace(r.Namespace)
	u.SetName(r.Name)
	return u
}

// Document adapts a JSON-tagged model to kubectl's printers: it marshals
// as the model does, in the model's field order.
type Document struct {
	Kind  string
	Value any
}

// GetObjectKind implements runtime.Object.
func (d *Document) GetObjectKind() schema.ObjectKind { return d }

// DeepCopyObject implements runtime.Object; printers only read the value.
func (d *Document) DeepCopyObject() runtime.Object { c := *d; return &c }

// SetGroupVersionKind implements schema.ObjectKind.
func (d *Document) SetGroupVersionKind(gvk schema.GroupVersionKind) { d.Kind = gvk.Kind }

// GroupVersionKind implements schema.ObjectKind.
func (d *Document) GroupVersionKind() schema.GroupVersionKind {
	gv, _ := schema.ParseGroupVersion(APIVersion)
	return gv.WithKind(d.Kind)
}

// MarshalJSON marshals the model, adding apiVersion and kind when the
// model has none.
func (d *Document) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(d.Value)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0] != '{' {
		return b, nil
	}
	var probe struct {
		APIVersion *string `json:"apiVersion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, err
	}
	if probe.APIVersion != nil {
		return b, nil
	}
	head := fmt.Sprintf(`{"apiVersion":%q,"kind":%q`, APIVersion, d.Kind)
	if string(b) == "{}" {
		return []byte(head + "}"), nil
	}
	return []byte(head + "," + string(b[1:])), nil
}
