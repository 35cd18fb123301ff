// Command kindcheck decodes a kind cluster config the way `kind create cluster
// --config` does (kind's own v1alpha4 types, unknown fields rejected), applies
// kind's defaults, checks the rules kind validates before creating nodes, and
// prints a JSON summary for tests/kind.
//
// kind's own loader and validator live in its internal packages, which no
// other module may import; this program uses the same public types and the
// same strict decoder (go.yaml.in/yaml/v3 with KnownFields), decodes a second
// time with sigs.k8s.io/yaml's strict mode (JSON field names), and mirrors the
// validation rules that need no container runtime.
//
// Usage: kindcheck FILE     (exit 0 and JSON on stdout, or exit 1 and errors on stderr)
//
//	kindcheck -default-image (the node image this kind release defaults to)
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	sigsyaml "sigs.k8s.io/yaml"
)

// Same expression as kind's internal config validation.
var validNameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)

type summary struct {
	Name              string                 `json:"name"`
	APIServerAddress  string                 `json:"apiServerAddress"`
	DefaultImage      string                 `json:"defaultImage"`
	Nodes             []nodeSummary          `json:"nodes"`
	Raw               map[string]interface{} `json:"raw"`
	StrictDecoders    []string               `json:"strictDecoders"`
	ValidationErrors  []string               `json:"validationErrors"`
	ExplicitNodeImage bool                   `json:"explicitNodeImage"`
}

type nodeSummary struct {
	Role              string                 `json:"role"`
	Image             string                 `json:"image"`
	ExtraPortMappings []v1alpha4.PortMapping `json:"extraPortMappings"`
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-default-image" {
		fmt.Println(defaults.Image)
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kindcheck FILE | kindcheck -default-image")
		os.Exit(2)
	}
	out, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kindcheck:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func check(path string) (*summary, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}

	// 1. kind's loader: read apiVersion/kind, then decode strictly into v1alpha4.Cluster.
	var tm v1alpha4.TypeMeta
	if err := yamlv3.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("could not determine kind / apiVersion: %w", err)
	}
	if tm.APIVersion != "kind.x-k8s.io/v1alpha4" || tm.Kind != "Cluster" {
		return nil, fmt.Errorf("want apiVersion kind.x-k8s.io/v1alpha4 and kind Cluster, got %q %q", tm.APIVersion, tm.Kind)
	}
	cfg := &v1alpha4.Cluster{}
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("strict decode (go.yaml.in/yaml/v3, as kind loads it): %w", err)
	}

	// 2. The same document through sigs.k8s.io/yaml's strict mode (JSON tags,
	//    duplicate keys and unknown fields rejected).
	cfgJSON := &v1alpha4.Cluster{}
	if err := sigsyaml.UnmarshalStrict(raw, cfgJSON); err != nil {
		return nil, fmt.Errorf("strict decode (sigs.k8s.io/yaml): %w", err)
	}

	explicitImage := false
	for _, n := range cfg.Nodes {
		if n.Image != "" {
			explicitImage = true
		}
	}

	// 3. kind's defaults, then the runtime-independent part of its validation.
	v1alpha4.SetDefaultsCluster(cfg)
	if errs := validate(cfg); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var generic map[string]interface{}
	if err := sigsyaml.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	s := &summary{
		Name:              cfg.Name,
		APIServerAddress:  cfg.Networking.APIServerAddress,
		DefaultImage:      defaults.Image,
		Raw:               generic,
		StrictDecoders:    []string{"go.yaml.in/yaml/v3 KnownFields", "sigs.k8s.io/yaml UnmarshalStrict"},
		ValidationErrors:  []string{},
		ExplicitNodeImage: explicitImage,
	}
	for _, n := range cfg.Nodes {
		pm := n.ExtraPortMappings
		if pm == nil {
			pm = []v1alpha4.PortMapping{}
		}
		s.Nodes = append(s.Nodes, nodeSummary{Role: string(n.Role), Image: n.Image, ExtraPortMappings: pm})
	}
	return s, nil
}

// validate mirrors kind's (*Cluster).Validate and (*Node).Validate for the
// rules that do not depend on the container runtime.
func validate(c *v1alpha4.Cluster) []error {
	var errs []error
	if !validNameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("%q is not a valid cluster name, cluster names must match %s", c.Name, validNameRE))
	}
	if c.Networking.APIServerPort != 0 && !validPort(c.Networking.APIServerPort) {
		errs = append(errs, fmt.Errorf("invalid apiServerPort %d", c.Networking.APIServerPort))
	}
	switch c.Networking.IPFamily {
	case v1alpha4.IPv4Family, v1alpha4.IPv6Family, v1alpha4.DualStackFamily:
	default:
		errs = append(errs, fmt.Errorf("invalid ipFamily: %s", c.Networking.IPFamily))
	}
	switch c.Networking.KubeProxyMode {
	case v1alpha4.IPTablesProxyMode, v1alpha4.IPVSProxyMode, v1alpha4.NFTablesProxyMode, "none":
	default:
		errs = append(errs, fmt.Errorf("invalid kubeProxyMode: %s", c.Networking.KubeProxyMode))
	}
	for field, subnets := range map[string]string{"podSubnet": c.Networking.PodSubnet, "serviceSubnet": c.Networking.ServiceSubnet} {
		for _, cidr := range strings.Split(subnets, ",") {
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s %q: %w", field, cidr, err))
			}
		}
	}
	controlPlanes := 0
	hostPorts := map[string]bool{}
	for i, n := range c.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			errs = append(errs, fmt.Errorf("node %d: %q is not a valid node role", i, n.Role))
		}
		if n.Image == "" {
			errs = append(errs, fmt.Errorf("node %d: image is a required field", i))
		}
		for _, pm := range n.ExtraPortMappings {
			if !validPort(pm.ContainerPort) {
				errs = append(errs, fmt.Errorf("node %d: invalid containerPort %d", i, pm.ContainerPort))
			}
			// kind allows -1 (random) and 0 (same as containerPort) here.
			if pm.HostPort < -1 || pm.HostPort > 65535 {
				errs = append(errs, fmt.Errorf("node %d: invalid hostPort %d", i, pm.HostPort))
			}
			if pm.ListenAddress != "" && net.ParseIP(pm.ListenAddress) == nil {
				errs = append(errs, fmt.Errorf("node %d: invalid listenAddress %q", i, pm.ListenAddress))
			}
			switch pm.Protocol {
			case "", v1alpha4.PortMappingProtocolTCP, v1alpha4.PortMappingProtocolUDP, v1alpha4.PortMappingProtocolSCTP:
			default:
				errs = append(errs, fmt.Errorf("node %d: invalid protocol %q", i, pm.Protocol))
			}
			key := fmt.Sprintf("%s/%s:%d", pm.Protocol, pm.ListenAddress, pm.HostPort)
			if pm.HostPort > 0 && hostPorts[key] {
				errs = append(errs, fmt.Errorf("node %d: host port %s mapped twice", i, key))
			}
			hostPorts[key] = true
		}
	}
	if controlPlanes < 1 {
		errs = append(errs, errors.New("must have at least one control-plane node"))
	}
	return errs
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }
