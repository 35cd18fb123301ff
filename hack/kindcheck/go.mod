// A tiny module that checks kind-config.yaml against kind's own v1alpha4
// types. The kind version here must equal KIND_VERSION in the Makefile
// (tests/kind checks it).
module modelops-bundle/hack/kindcheck

go 1.22

require (
	go.yaml.in/yaml/v3 v3.0.4
	sigs.k8s.io/kind v0.33.0
	sigs.k8s.io/yaml v1.4.0
)

require github.com/pkg/errors v0.9.1 // indirect
