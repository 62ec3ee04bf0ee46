package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	expect(t, ctl(nil, "version"), 0, "out:servalctl ")
}

func TestSelectorMatch(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"match", []string{"role == 'db' && env in {'prod','staging'}", "role=db", "env=prod"}, 0, "out:match"},
		{"no match", []string{"role == 'db'", "role=web"}, 1, "out:no match"},
		{"missing label satisfies !=", []string{"role != 'db'"}, 0, "out:match"},
		{"empty selector is all()", []string{"", "a=b"}, 0, "out:match"},
		{"bad selector", []string{"role == 'db' &&"}, 2, "err:position"},
		{"bad label argument", []string{"all()", "novalue"}, 2, "err:KEY=VALUE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, ctl(nil, append([]string{"selector", "match"}, c.args...)...), c.code, c.want)
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"examples directory", []string{"-f", "testdata/examples"}, 0, []string{
			`out:IPPool "pool-v4" valid`, `out:NetworkPolicy "production/allow-tcp-6379" valid`, `out:HostEndpoint "host1-eth0" valid`}},
		{"bad port and all problems at once", []string{"-f", "testdata/bad/mixed.yaml"}, 1, []string{
			`err:testdata/bad/mixed.yaml: document 2 (line 9): GlobalNetworkPolicy "allow-db": spec.ingress[0].destination.ports[1]: "70000" is not a valid port (1-65535)`,
			"err:nothing was written"}},
		{"unknown field named", []string{"-f", "testdata/bad/unknown-field.yaml"}, 1, []string{
			`err:IPPool "typo-pool": spec.blocksize: unknown field "blocksize" (did you mean "blockSize"?)`}},
		{"broken yaml", []string{"-f", "testdata/bad/broken.yaml"}, 1, []string{
			"err:testdata/bad/broken.yaml: document 1 (line 1): not valid YAML or JSON"}},
		{"unknown kind", []string{"-f", "testdata/bad/unknown-kind.yaml"}, 1, []string{
			`err:kind: "IPPol" is not a known kind`}},
		{"unknown fields and invalid values reported together", []string{"-f", "testdata/bad/many.yaml"}, 1, []string{
			`err:document 1 (line 1): GlobalNetworkPolicy "allow-db": spec.ingress[0].destination.portz: unknown field "portz" (did you mean "ports"?)`,
			`err:GlobalNetworkPolicy "allow-db": spec.selector: "role = 'db'" is not a valid selector: at position 5`,
			`err:GlobalNetworkPolicy "allow-db": spec.ingress[0].action: "allow" is not a valid action`,
			`err:GlobalNetworkPolicy "allow-db": spec.ingress[0].source.nets[0]: "10.0.0.0/33" is not a valid CIDR`,
			`err:document 2 (line 17): IPPool "Bad_Name": metadata.name: "Bad_Name" must consist of lower case`,
			`err:IPPool "Bad_Name": spec.blockSize: "19" is not a valid IPv4 block size (20-32)`}},
		{"directory without -R reads no subdirectories", []string{"-f", "testdata"}, 1, []string{"err:no resources found in testdata"}},
		{"directory with -R reads them all", []string{"-R", "-f", "testdata"}, 1, []string{
			`err:testdata/bad/many.yaml: document 1`, `err:testdata/bad/unknown-kind.yaml`, "err:nothing was written"}},
		{"missing file", []string{"-f", "testdata/nope.yaml"}, 1, []string{"err:testdata/nope.yaml"}},
		{"no input", nil, 1, []string{"err:no input"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, ctl(nil, append([]string{"validate"}, c.args...)...), c.code, c.wants...)
		})
	}
}

// TestLifecycle walks a user's session: create examples, read them back
// with defaults, refuse bad or conflicting writes without side effects,
// change and delete.
func TestLifecycle(t *testing.T) {
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
		wants []string
	}{
		{"create examples", "", []string{"create", "-f", "testdata/examples"}, 0, []string{
			`out:IPPool "pool-v4" created`, `out:GlobalNetworkPolicy "security.allow-db" created`}},
		{"create again fails whole", "", []string{"create", "-f", "testdata/examples"}, 1, []string{
			`err:IPPool "pool-v4" already exists`, "err:nothing was written"}},
		{"create --skip-exists", "", []string{"create", "--skip-exists", "-f", "testdata/examples/01-pools.yaml"}, 0, []string{
			`out:IPPool "pool-v4" skipped`}},
		{"defaults filled in", "", []string{"get", "ippool", "pool-v4", "-o", "yaml"}, 0, []string{
			"out:blockSize: 26", "out:nodeSelector: all()", "out:cidr: 10.65.0.0/16", "out:resourceVersion:", "out:creationTimestamp:"}},
		{"ipv6 defaults kept", "", []string{"get", "ippool", "pool-v6", "-o", "json"}, 0, []string{
			`out:"blockSize": 120`, `out:"cidr": "fd00:65::/48"`}},
		{"policy types inferred", "", []string{"get", "gnp", "security.allow-db", "-o", "yaml"}, 0, []string{
			"out:- Ingress", "out:- Egress", "out:tier: security"}},
		{"bgp defaults", "", []string{"get", "bgpconfiguration", "default", "-o", "yaml"}, 0, []string{
			"out:asNumber: 63400", "out:nodeToNodeMeshEnabled: true"}},
		{"list table", "", []string{"get", "ippools"}, 0, []string{"out:NAME", "out:pool-v4", "out:pool-v6", "out:10.65.0.0/16"}},
		{"list wide", "", []string{"get", "ippools", "-o", "wide"}, 0, []string{"out:BLOCKSIZE", "out:120"}},
		{"list names", "", []string{"get", "ippools", "-o", "name"}, 0, []string{"out:ippool/pool-v4\nippool/pool-v6\n"}},
		{"namespaced default ns is empty", "", []string{"get", "networkpolicies"}, 0, []string{"out:NAME"}},
		{"namespaced -n", "", []string{"get", "networkpolicies", "-n", "production"}, 0, []string{"out:allow-tcp-6379"}},
		{"namespaced -A", "", []string{"get", "networkpolicies", "-A"}, 0, []string{"out:NAMESPACE", "out:production"}},
		{"label selector", "", []string{"get", "globalnetworksets", "-l", "role == 'db'", "-o", "name"}, 0, []string{"out:globalnetworkset/external-db"}},
		{"get missing", "", []string{"get", "ippool", "nope"}, 1, []string{`err:IPPool "nope"`, "err:does not exist"}},
		{"unknown kind", "", []string{"get", "ippoolz"}, 1, []string{`err:unknown resource kind "ippoolz"`}},
		{"mixed file writes nothing", "", []string{"create", "-f", "testdata/bad/mixed.yaml"}, 1, []string{"err:nothing was written"}},
		{"good doc of mixed file absent", "", []string{"get", "ippool", "good-pool"}, 1, []string{"err:does not exist"}},
		{"apply from stdin", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v4}\nspec: {cidr: 10.65.0.0/16, blockSize: 28}\n",
			[]string{"apply", "-f", "-"}, 0, []string{`out:IPPool "pool-v4" configured`}},
		{"apply took effect", "", []string{"get", "ippool", "pool-v4", "-o", "yaml"}, 0, []string{"out:blockSize: 28"}},
		{"stale replace conflicts", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v4, resourceVersion: \"1\"}\nspec: {cidr: 10.65.0.0/16}\n",
			[]string{"replace", "-f", "-"}, 1, []string{"err:resourceVersion mismatch"}},
		{"stale replace changed nothing", "", []string{"get", "ippool", "pool-v4", "-o", "yaml"}, 0, []string{"out:blockSize: 28"}},
		{"replace missing fails", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-x}\nspec: {cidr: 10.90.0.0/16}\n",
			[]string{"replace", "-f", "-"}, 1, []string{`err:IPPool "pool-x" does not exist`}},
		{"patch", "", []string{"patch", "ippool", "pool-v4", "-p", `{"spec":{"disabled":true}}`}, 0, []string{`out:IPPool "pool-v4" patched`}},
		{"patch took effect", "", []string{"get", "ippool", "pool-v4", "-o", "yaml"}, 0, []string{"out:disabled: true", "out:blockSize: 28"}},
		{"invalid patch rejected", "", []string{"patch", "ippool", "pool-v4", "-p", `{"spec":{"blockSize":99}}`}, 1, []string{"err:spec.blockSize", "err:nothing was written"}},
		{"patch wrong types rejected", "", []string{"patch", "ippool", "pool-v4", "-p", `{"spec":{"blockSize":"x","cidr":5}}`}, 1, []string{
			`err:IPPool "pool-v4": spec.blockSize: expected an integer, got string "x"`, `err:IPPool "pool-v4": spec.cidr: expected a string, got number 5`}},
		{"patch unknown field rejected", "", []string{"patch", "ippool", "pool-v4", "-p", `{"spec":{"colour":"red"}}`}, 1, []string{`err:spec.colour: unknown field "colour"`}},
		{"label add", "", []string{"label", "ippool", "pool-v4", "rack=r1"}, 0, []string{"out:labeled"}},
		{"label change needs overwrite", "", []string{"label", "ippool", "pool-v4", "rack=r2"}, 1, []string{"err:--overwrite"}},
		{"label overwrite", "", []string{"label", "ippool", "pool-v4", "rack=r2", "--overwrite"}, 0, []string{"out:labeled"}},
		{"label visible", "", []string{"get", "ippools", "-l", "rack == 'r2'", "-o", "name"}, 0, []string{"out:ippool/pool-v4"}},
		{"label remove", "", []string{"label", "ippool", "pool-v4", "rack-"}, 0, []string{"out:labeled"}},
		{"label bad key", "", []string{"label", "ippool", "pool-v4", "bad-=x"}, 1, []string{"err:metadata.labels"}},
		{"delete by name", "", []string{"delete", "ippool", "pool-v6"}, 0, []string{`out:IPPool "pool-v6" deleted`}},
		{"delete missing fails", "", []string{"delete", "ippool", "pool-v6"}, 1, []string{"err:does not exist", "err:nothing was deleted"}},
		{"delete --skip-not-exists", "", []string{"delete", "ippool", "pool-v6", "--skip-not-exists"}, 0, []string{"out:skipped"}},
		{"delete from files", "", []string{"delete", "-f", "testdata/examples", "--skip-not-exists"}, 0, []string{`out:GlobalNetworkPolicy "security.allow-db" deleted`}},
		{"all gone", "", []string{"get", "ippools", "-o", "name"}, 0, nil},
	}
	for _, s := range steps {
		var stdin []byte
		if s.stdin != "" {
			stdin = []byte(s.stdin)
		}
		r := ctl(stdin, s.args...)
		t.Run(s.name, func(t *testing.T) { expect(t, r, s.code, s.wants...) })
		if s.name == "all gone" && strings.TrimSpace(r.stdout) != "" {
			t.Errorf("pools left after delete: %q", r.stdout)
		}
	}
}

// TestRoundTrip: what get -o yaml prints, apply reads back unchanged.
func TestRoundTrip(t *testing.T) {
	expect(t, ctl(nil, "apply", "-f", "testdata/examples/05-sets.yaml"), 0)
	t.Cleanup(func() { ctl(nil, "delete", "-f", "testdata/examples/05-sets.yaml", "--skip-not-exists") })
	out := ctl(nil, "get", "globalnetworksets", "-o", "yaml")
	expect(t, out, 0, "out:kind: GlobalNetworkSetList")
	f := filepath.Join(t.TempDir(), "sets.yaml")
	if err := os.WriteFile(f, []byte(out.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, ctl(nil, "apply", "-f", f), 0, `out:GlobalNetworkSet "external-db" configured`)
	var got map[string]any
	r := ctl(nil, "get", "globalnetworkset", "external-db", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get -o json is not JSON: %v\n%s", err, r)
	}
	if got["kind"] != "GlobalNetworkSet" {
		t.Errorf("kind = %v", got["kind"])
	}
}

func TestUnreachableDatastore(t *testing.T) {
	start := time.Now()
	r := ctl(nil, "get", "ippools", "--etcd-endpoints", "http://"+freeAddr(), "--timeout", "2s")
	expect(t, r, 1, "err:cannot use the datastore at http://127.0.0.1:", "err:servalctl datastore serve")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to give up on an unreachable datastore", d)
	}
	// Nothing is written when the datastore is down, and validation still
	// happens first: a bad file is reported as bad, not as unreachable.
	expect(t, ctl(nil, "create", "-f", "testdata/bad/unknown-field.yaml", "--etcd-endpoints", "http://"+freeAddr()), 1, "err:unknown field")
}
