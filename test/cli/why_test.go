package cli_test

import (
	"encoding/json"
	"testing"
)

// TestWhy runs servalctl why against a real etcd holding two profile
// groups, a policy with a Pass and a staged deny.
func TestWhy(t *testing.T) {
	expect(t, ctl(nil, "apply", "-f", "testdata/why/world.yaml"), 0, `out:StagedGlobalNetworkPolicy "why-no-web" created`)
	t.Cleanup(func() { ctl(nil, "delete", "-f", "testdata/why/world.yaml", "--skip-not-exists") })
	steps := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"same group", []string{"why", "a", "e", "--proto", "icmp"}, 0, []string{
			"out:10.88.0.1 -> 10.88.0.5 icmp type 8 code 0: ALLOWED",
			"out:egress at host1 (whytest/host1-k8s-a-eth0): ALLOWED",
			"out:ingress at host2 (whytest/host2-k8s-e-eth0): ALLOWED",
			"out:  tier default (ends in Deny)\n    GlobalNetworkPolicy why-two-to-one-web\n      rule 2 matched: Pass (skip the rest of the tier)\n  profile why-group1\n    rule 1 matched: Allow"}},
		{"other group denied", []string{"why", "whytest/host1-k8s-b-eth0", "10.88.0.1", "--proto", "tcp", "--port", "22"}, 1, []string{
			"out:DENIED", "out:  profile why-group1\n    no rule matched\n  no policy or profile allowed: Deny"}},
		{"policy allows web", []string{"why", "b", "a", "--port", "80"}, 0, []string{"out:rule 1 matched: Allow"}},
		{"plain address", []string{"why", "a", "192.0.2.1", "--proto", "udp", "--port", "53"}, 0, []string{"out:192.0.2.1 is not a Serval endpoint"}},
		{"staged side by side", []string{"why", "b", "a", "--port", "80", "--staged"}, 0, []string{
			"out:ALLOWED now, DENIED with the staged policies", "out:staged:      StagedGlobalNetworkPolicy why-no-web (Set)",
			"out:GlobalNetworkPolicy why-no-web"}},
		{"staged not enforced", []string{"get", "gnp", "why-no-web"}, 1, []string{"err:does not exist"}},
		{"get staged", []string{"get", "sgnp", "why-no-web", "-o", "yaml"}, 0, []string{"out:stagedAction: Set", "out:tier: default"}},
		{"list staged", []string{"get", "stagedglobalnetworkpolicies"}, 0, []string{"out:ACTION", "out:why-no-web", "out:Set"}},
		{"unknown endpoint", []string{"why", "nobody", "a", "--proto", "icmp"}, 2, []string{`err:source: "nobody" is neither an address`}},
		{"port required", []string{"why", "a", "e"}, 2, []string{"err:--port is required for tcp"}},
		{"bad protocol", []string{"why", "a", "e", "--proto", "tcpp"}, 2, []string{`err:unknown protocol "tcpp"`}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { expect(t, ctl(nil, s.args...), s.code, s.wants...) })
	}
	t.Run("json", func(t *testing.T) {
		r := ctl(nil, "why", "b", "a", "--port", "81", "-o", "json")
		expect(t, r, 1)
		var res struct {
			Verdict string
			Packet  struct {
				Src, Dst string
				DstPort  int
			}
			Ingress struct {
				Verdict string
				Steps   []struct{ Kind, Policy, Action string }
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if res.Verdict != "Deny" || res.Ingress.Verdict != "Deny" || len(res.Ingress.Steps) == 0 ||
			res.Packet.Src != "10.88.0.2" || res.Packet.Dst != "10.88.0.1" || res.Packet.DstPort != 81 {
			t.Errorf("json: %+v", res)
		}
	})
	t.Run("staged delete", func(t *testing.T) {
		expect(t, ctl([]byte("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: why-two-to-one-web}\nspec: {stagedAction: Delete}\n"), "apply", "-f", "-"), 0)
		defer ctl(nil, "delete", "sgnp", "why-two-to-one-web")
		expect(t, ctl(nil, "why", "b", "a", "--proto", "icmp", "--staged"), 1, "out:DENIED now, DENIED with the staged policies",
			"out:staged:      StagedGlobalNetworkPolicy why-two-to-one-web (Delete)")
		expect(t, ctl([]byte("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: x}\nspec: {stagedAction: Maybe}\n"), "apply", "-f", "-"), 1,
			`err:spec.stagedAction: "Maybe" is not one of Set, Delete`)
	})
}
