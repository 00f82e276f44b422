package util

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func outputCommand(t *testing.T, f *OutputFlags, args ...string) {
	t.Helper()
	cmd := &cobra.Command{Use: "x"}
	f.AddFlags(cmd)
	require.NoError(t, cmd.ParseFlags(args))
}

func TestOutputFlagsKindsOfFormat(t *testing.T) {
	for _, tc := range []struct {
		args                       []string
		lines                      bool
		human, json, printer, wide bool
	}{
		{args: nil, human: true},
		{args: []string{"-o", "wide"}, human: true, wide: true},
		{args: []string{"-o", "json"}, json: true, printer: true},
		{args: []string{"-o", "json"}, lines: true, json: true},
		{args: []string{"-o", "yaml"}, lines: true, printer: true},
		{args: []string{"-o", "name"}, printer: true},
		{args: []string{"-o", "jsonpath={.a}"}, lines: true, printer: true},
	} {
		t.Run(fmt.Sprint(tc.args, tc.lines), func(t *testing.T) {
			f := NewOutputFlags("table", "wide")
			f.JSONLines = tc.lines
			outputCommand(t, f, tc.args...)
			require.NoError(t, f.Validate())
			assert.Equal(t, tc.human, f.Human())
			assert.Equal(t, tc.json, f.JSON())
			assert.Equal(t, tc.printer, f.Printer())
			assert.Equal(t, tc.wide, f.Is("wide"))
		})
	}
}

func TestOutputFlagsRefuseWithKubectlsMessage(t *testing.T) {
	f := NewWorkflowOutputFlags()
	outputCommand(t, f, "-o", "xml")
	err := f.Validate()
	require.True(t, IsUsage(err))
	assert.Equal(t, `unable to match a printer suitable for the output format "xml", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,kyaml,name,template,templatefile,text,yaml`, err.Error())

	f = NewWorkflowOutputFlags()
	outputCommand(t, f, "-o", "go-template={{.a")
	err = f.Validate()
	require.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), "-o go-template={{.a: error parsing template {{.a")

	f = NewOutputFlags("table")
	f.Format = ""
	require.NoError(t, f.Validate())
	assert.Equal(t, "table", f.Format, "empty means the default")
}

func TestDocumentPrintsTheModelWithApiVersionAndKind(t *testing.T) {
	type model struct {
		Name  string `json:"name"`
		Steps []int  `json:"steps"`
	}
	f := NewOutputFlags("text")
	outputCommand(t, f, "-o", "json")
	var buf bytes.Buffer
	require.NoError(t, f.Print(&buf, "Plan", model{Name: "db", Steps: []int{3, 0}}))
	assert.Equal(t, "{\n    \"apiVersion\": \"kubectl-sts.io/v1alpha1\",\n    \"kind\": \"Plan\",\n    \"name\": \"db\",\n    \"steps\": [\n        3,\n        0\n    ]\n}\n", buf.String())

	// A model with its own apiVersion and kind keeps them.
	type own struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	buf.Reset()
	require.NoError(t, f.Print(&buf, "Plan", own{APIVersion: "other/v1", Kind: "Other"}))
	assert.Equal(t, "{\n    \"apiVersion\": \"other/v1\",\n    \"kind\": \"Other\"\n}\n", buf.String())

	// -o name prints the references, kubectl's way.
	f = NewOutputFlags("text")
	outputCommand(t, f, "-o", "name")
	buf.Reset()
	require.NoError(t, f.Print(&buf, "Plan", model{}, StatefulSetRef("ns", "db"), StatefulSetRef("ns", "kv")))
	assert.Equal(t, "statefulset.apps/db\nstatefulset.apps/kv\n", buf.String())
}

func TestTimeoutFlags(t *testing.T) {
	assert.NoError(t, (&TimeoutFlags{StepTimeout: time.Minute}).Validate())
	err := (&TimeoutFlags{Timeout: -time.Second, StepTimeout: time.Minute}).Validate()
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--timeout cannot be negative, got -1s (0 means no limit)", err.Error())
	err = (&TimeoutFlags{}).Validate()
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--step-timeout must be positive, got 0s", err.Error())
}

func TestTimeoutContextStopsLikeAnInterruptAndSaysItWasTheTimeout(t *testing.T) {
	f := &TimeoutFlags{Timeout: 20 * time.Millisecond}
	ctx, cancel := f.Context(context.Background())
	defer cancel()
	<-ctx.Done()
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "the workflow sees what Ctrl-C gives it, and stops at a safe point")
	stopped := fmt.Errorf("scale-down interrupted (progress recorded): %w", ctx.Err())
	err := f.Explain(ctx, stopped)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, ExitNeedsAttention, ee.Code)
	assert.Equal(t, "the operation did not finish within --timeout 20ms and stopped cleanly, keeping its record: scale-down interrupted (progress recorded)", err.Error())
	assert.NotErrorIs(t, err, context.Canceled, "not reported as an interrupt")

	// Other errors, and a Ctrl-C before the time ran out, pass unchanged.
	other := errors.New("gate failed")
	assert.Same(t, other, f.Explain(ctx, other))
	ctx2, cancel2 := f.Context(context.Background())
	cancel2()
	assert.Same(t, stopped, f.Explain(ctx2, stopped))

	// No --timeout: no deadline.
	ctx3, cancel3 := (&TimeoutFlags{}).Context(context.Background())
	defer cancel3()
	select {
	case <-ctx3.Done():
		t.Fatal("cancelled without a timeout")
	case <-time.After(30 * time.Millisecond):
	}
}

func TestEngineFlagsValidate(t *testing.T) {
	reg := plugins.NewRegistry()
	assert.NoError(t, (&EngineFlags{Engine: "auto"}).Validate(reg))
	assert.NoError(t, (&EngineFlags{Engine: "none"}).Validate(nil))
	err := (&EngineFlags{Engine: "oracle"}).Validate(reg)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), `unknown engine "oracle" in --engine: use one of auto, none`)
	err = (&EngineFlags{Engine: "auto", Timeout: -time.Second}).Validate(reg)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--engine-timeout must not be negative, got -1s", err.Error())
	err = (&EngineFlags{Engine: "auto", Container: "Bad_Name"}).Validate(reg)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), `--container "Bad_Name" is not a container name`)
}

func TestValidateWorkflowFlagsChecksOutputThenTimeoutsThenEngine(t *testing.T) {
	good := func() (*OutputFlags, *TimeoutFlags, *EngineFlags) {
		return NewWorkflowOutputFlags(), &TimeoutFlags{StepTimeout: time.Minute}, NewEngineFlags()
	}
	out, timeout, engine := good()
	require.NoError(t, ValidateWorkflowFlags(out, timeout, engine, plugins.NewRegistry()))

	out, timeout, engine = good()
	out.Format, timeout.Timeout, engine.Timeout = "xml", -time.Second, -time.Second
	err := ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), `output format "xml"`)

	out, timeout, engine = good()
	timeout.Timeout, engine.Timeout = -time.Second, -time.Second
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--timeout cannot be negative, got -1s (0 means no limit)", err.Error())

	out, timeout, engine = good()
	timeout.StepTimeout = 0
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.Equal(t, "--step-timeout must be positive, got 0s", err.Error())

	out, timeout, engine = good()
	engine.Timeout = -time.Second
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--engine-timeout must not be negative, got -1s", err.Error())

	out, timeout, engine = good()
	engine.Engine = "nosuch"
	err = ValidateWorkflowFlags(out, timeout, engine, nil)
	assert.True(t, IsUsage(err))
	assert.Contains(t, err.Error(), "nosuch")
}

func TestValidateTimeoutChecksTimeoutAlone(t *testing.T) {
	assert.NoError(t, (&TimeoutFlags{}).ValidateTimeout(), "a command continuing a recorded operation has no --step-timeout")
	err := (&TimeoutFlags{Timeout: -time.Second}).ValidateTimeout()
	assert.True(t, IsUsage(err))
	assert.Equal(t, "--timeout cannot be negative, got -1s (0 means no limit)", err.Error())
}
