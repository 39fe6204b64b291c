// Package kubernetes checks Baton's Kubernetes manifests without a cluster:
// kustomize renders them (its own Go module, pinned in go.mod), and every
// object it renders is decoded strictly into the k8s.io/api types, so a
// misspelled or misplaced field fails here rather than at kubectl apply.
// It is a module of its own, so that Baton's users do not download
// Kubernetes' libraries; make test runs it.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is what kustomize build gives, by kind and name.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	services    map[string]*corev1.Service
	secrets     map[string]*corev1.Secret
	budgets     map[string]*policyv1.PodDisruptionBudget
}

func render(t *testing.T) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), ".")
	require.NoError(t, err)
	r := rendered{map[string]*appsv1.Deployment{}, map[string]*batchv1.Job{}, map[string]*corev1.Service{},
		map[string]*corev1.Secret{}, map[string]*policyv1.PodDisruptionBudget{}}
	for _, res := range resources.Resources() {
		y, err := res.AsYAML()
		require.NoError(t, err)
		j, err := yaml.YAMLToJSON(y)
		require.NoError(t, err)
		name := res.GetName()
		switch kind := res.GetKind(); kind {
		case "Deployment":
			r.deployments[name] = strict[appsv1.Deployment](t, kind, j)
		case "Job":
			r.jobs[name] = strict[batchv1.Job](t, kind, j)
		case "Service":
			r.services[name] = strict[corev1.Service](t, kind, j)
		case "Secret":
			r.secrets[name] = strict[corev1.Secret](t, kind, j)
		case "PodDisruptionBudget":
			r.budgets[name] = strict[policyv1.PodDisruptionBudget](t, kind, j)
		default:
			t.Fatalf("%s %s: a kind this test does not check", kind, name)
		}
	}
	return r
}

// strict decodes an object, refusing fields its type does not have.
func strict[T any](t *testing.T, kind string, j []byte) *T {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	v := new(T)
	require.NoError(t, d.Decode(v), "%s:\n%s", kind, j)
	return v
}

func TestManifestsRenderAndHoldTogether(t *testing.T) {
	r := render(t)
	require.ElementsMatch(t, []string{"baton-serve", "baton-worker"}, keys(r.deployments))
	require.ElementsMatch(t, []string{"baton-migrate"}, keys(r.jobs))
	require.ElementsMatch(t, []string{"baton"}, keys(r.services))
	require.ElementsMatch(t, []string{"baton"}, keys(r.secrets))
	require.ElementsMatch(t, []string{"baton-serve", "baton-worker"}, keys(r.budgets))

	secret := r.secrets["baton"]
	require.Contains(t, secret.StringData, "DATABASE_URL")
	require.GreaterOrEqual(t, len(secret.StringData["BATON_API_TOKENS"]), 16, "serve refuses shorter tokens")

	pods := map[string]corev1.PodTemplateSpec{"migrate": r.jobs["baton-migrate"].Spec.Template}
	for name, d := range r.deployments {
		sel, err := metav1LabelSelector(d)
		require.NoError(t, err)
		require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s selects its own pods", name)
		pods[strings.TrimPrefix(name, "baton-")] = d.Spec.Template
		// Its disruption budget selects the same pods.
		b := r.budgets[name]
		require.NotNil(t, b, name)
		require.Equal(t, d.Spec.Selector.MatchLabels, b.Spec.Selector.MatchLabels, name)
		require.Equal(t, "baton", d.Labels["app.kubernetes.io/part-of"], "the kustomization's labels")
	}
	svc := r.services["baton"]
	require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pods["serve"].Labels)), "the Service sends to serve")

	for name, p := range pods {
		c := p.Spec.Containers[0]
		require.Equal(t, "baton:dev", c.Image, name)
		require.Equal(t, []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "baton"}}}},
			c.EnvFrom, "%s reads the Secret", name)
		require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s requests CPU", name)
		require.False(t, c.Resources.Requests.Memory().IsZero(), "%s requests memory", name)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s has a memory limit", name)
		require.True(t, *p.Spec.SecurityContext.RunAsNonRoot, name)
		require.False(t, *c.SecurityContext.AllowPrivilegeEscalation, name)
		require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, name)
		if name == "migrate" {
			require.Equal(t, []string{"migrate", "up"}, c.Args)
			continue
		}
		require.Contains(t, c.Args, "--wait-for-migrations", "%s starts beside a running migration", name)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, name)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, name)
		require.True(t, slices.ContainsFunc(c.Ports, func(port corev1.ContainerPort) bool {
			return port.Name == c.ReadinessProbe.HTTPGet.Port.StrVal
		}), "%s probes a port it has", name)
		require.True(t, slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }),
			"%s has a writable /tmp", name)
		// The grace covers the drain: serve's delay and 30 s of requests in
		// flight, a worker's 30 s default shutdown_grace.
		require.GreaterOrEqual(t, *p.Spec.TerminationGracePeriodSeconds, int64(35), name)
	}
	serve := pods["serve"].Spec.Containers[0]
	require.Contains(t, serve.Env, corev1.EnvVar{Name: "BATON_SHUTDOWN_DELAY", Value: "5s"})
	require.Equal(t, []string{"serve", "--addr", "0.0.0.0:8080", "--wait-for-migrations"}, serve.Args)
	require.Equal(t, "metadata.name", pods["worker"].Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath, "a worker is named by its pod")
}

func keys[V any](m map[string]V) []string {
	var k []string
	for name := range m {
		k = append(k, name)
	}
	return k
}

func metav1LabelSelector(d *appsv1.Deployment) (labels.Selector, error) {
	if d.Spec.Selector == nil {
		return nil, fmt.Errorf("%s has no selector", d.Name)
	}
	return labels.SelectorFromSet(d.Spec.Selector.MatchLabels), nil
}
