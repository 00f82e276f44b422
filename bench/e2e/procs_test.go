package e2e

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// proc is one finished process.
type proc struct {
	wall           time.Duration
	maxRSS         int64 // KiB
	code           int
	stdout, stderr string
}

// runProc runs a command against the test bed and measures it. Its
// environment points kubectl at the cluster and puts the test bed's
// kubectl first in PATH (the runbooks call plain `kubectl`).
func runProc(ctx context.Context, name string, args ...string) proc {
	cmd := exec.CommandContext(ctx, name, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, append(cluster.Env(), "PATH="+cluster.BinDir+":"+os.Getenv("PATH"))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	p := proc{wall: time.Since(began), stdout: stdout.String(), stderr: stderr.String()}
	if cmd.ProcessState != nil {
		p.code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.maxRSS = ru.Maxrss
		}
	} else if err != nil {
		p.code = -1
		p.stderr += err.Error()
	}
	return p
}

// request is one API request a `-v=6` run logged.
type request struct {
	at       time.Time
	verb     string // get, list, watch, create, update, patch, delete
	resource string // e.g. pods, statefulsets, configmaps, pods/exec
}

var responseLine = regexp.MustCompile(`^[IWE](\d{4} \d{2}:\d{2}:\d{2}\.\d{6}).*"Response" verb="(\w+)" url="([^"]+)"`)

// requests parses the API requests client-go logs at -v=6 ("Response"
// lines), watches included.
func requests(stderr string) []request {
	var out []request
	year := time.Now().Year()
	for line := range strings.Lines(stderr) {
		m := responseLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.ParseInLocation("2006 0102 15:04:05.000000", time.Now().Format("2006")+" "+m[1], time.Local)
		if err != nil || at.Year() != year {
			continue
		}
		u, err := url.Parse(m[3])
		if err != nil {
			continue
		}
		out = append(out, classify(at, m[2], u))
	}
	return out
}

// classify names a request by the Kubernetes verb and resource.
func classify(at time.Time, method string, u *url.URL) request {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	// /api/v1/... or /apis/group/version/...
	switch {
	case len(parts) > 0 && parts[0] == "api":
		parts = parts[min(2, len(parts)):]
	case len(parts) > 0 && parts[0] == "apis":
		parts = parts[min(3, len(parts)):]
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	r := request{at: at}
	named := len(parts) >= 2
	if len(parts) > 0 {
		r.resource = parts[0]
	}
	if len(parts) >= 3 {
		r.resource += "/" + parts[2]
	}
	switch method {
	case "GET":
		switch {
		case u.Query().Get("watch") == "true" || u.Query().Get("watch") == "1":
			r.verb = "watch"
		case named:
			r.verb = "get"
		default:
			r.verb = "list"
		}
	case "POST":
		r.verb = "create"
	case "PUT":
		r.verb = "update"
	default:
		r.verb = strings.ToLower(method)
	}
	return r
}

// tally counts requests by "verb resource", sorted by count then name.
func tally(reqs []request) []string {
	n := map[string]int{}
	for _, r := range reqs {
		n[r.verb+" "+r.resource]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if n[keys[i]] != n[keys[j]] {
			return n[keys[i]] > n[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + " ×" + itoa(n[k])
	}
	return out
}

func count(reqs []request, verb string) int {
	n := 0
	for _, r := range reqs {
		if r.verb == verb {
			n++
		}
	}
	return n
}

// perStep is the number of requests per step of a rollout: those after
// the first partition patch up to and including the last, over the steps
// in between.
func perStep(reqs []request) float64 {
	var patches []int
	for i, r := range reqs {
		if r.verb == "patch" && r.resource == "statefulsets" {
			patches = append(patches, i)
		}
	}
	if len(patches) < 2 {
		return 0
	}
	first, last := patches[0], patches[len(patches)-1]
	return float64(last-first) / float64(len(patches)-1)
}
