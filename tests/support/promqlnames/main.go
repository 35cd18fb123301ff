// promql-names parses PromQL with the parser of Prometheus itself (the module version that
// matches the Prometheus the tests run) and prints the metric names each expression selects.
//
// Input on stdin: a JSON array of expressions. Output on stdout: a JSON array, one object per
// expression: {"metrics": [...], "nameMatchers": [...], "error": "..."}. "nameMatchers" lists
// selectors that pick metrics by a __name__ matcher other than equality (not checkable
// against a catalog); "error" is the parse error, empty when the expression parses.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Metrics      []string `json:"metrics"`
	NameMatchers []string `json:"nameMatchers"`
	Error        string   `json:"error"`
}

func analyse(expr string) result {
	r := result{Metrics: []string{}, NameMatchers: []string{}}
	node, err := parser.ParseExpr(expr)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	seen := map[string]bool{}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				continue
			}
			if m.Type == labels.MatchEqual {
				name = m.Value
			} else {
				r.NameMatchers = append(r.NameMatchers, m.String())
			}
		}
		if name != "" && !seen[name] {
			seen[name] = true
			r.Metrics = append(r.Metrics, name)
		}
		return nil
	})
	sort.Strings(r.Metrics)
	return r
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintf(os.Stderr, "promql-names: stdin must be a JSON array of strings: %v\n", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(exprs))
	for _, e := range exprs {
		out = append(out, analyse(e))
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "promql-names: %v\n", err)
		os.Exit(1)
	}
}
