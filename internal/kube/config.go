package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// EnvKubeconfig is the environment variable kubectl reads too.
const EnvKubeconfig = "KUBECONFIG"

// RESTConfig returns the client configuration for the API server, tried in
// this order: the kubeconfig file named by path, the files named by
// $KUBECONFIG, and the in-cluster service account. userAgent names the
// binary in the API server's audit log and metrics.
func RESTConfig(path, userAgent string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case path != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
		}
	case os.Getenv(EnvKubeconfig) != "":
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("reading kubeconfig from $%s (%s): %w", EnvKubeconfig, os.Getenv(EnvKubeconfig), err)
		}
	default:
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("no Kubernetes API server: give --kubeconfig, set $%s, or run in a pod with a service account", EnvKubeconfig)
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes configuration: %w", err)
		}
	}
	if userAgent != "" {
		cfg.UserAgent = userAgent
	}
	return cfg, nil
}
