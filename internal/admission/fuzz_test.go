package admission

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/calc"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/netconst"
)

// decodeStored turns the bytes of a stored entry into a resource of kind,
// as the datastore's decode does for the syncer: JSON into a fresh object
// of the kind, type fields from the kind, whatever the bytes said.
func decodeStored(kind string, data []byte) (api.Resource, error) {
	obj, err := api.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, err
	}
	*obj.GetTypeMeta() = api.TypeMeta{Kind: kind, APIVersion: api.APIVersion}
	return obj, nil
}

// FuzzDecodeAndCalculate is the agent's path from the datastore to the
// dataplane's input: bytes decoded as the syncer decodes them, admitted,
// and given to the calculation graph (added, modified, deleted) beside a
// valid local endpoint. Nothing may panic; no endpoint with an interface
// name the kernel would refuse may come out; an object that failed
// validation is reported and, when it is an endpoint, never programmed;
// a policy that failed comes out with nothing but Deny rules.
func FuzzDecodeAndCalculate(f *testing.F) {
	for _, seed := range []struct {
		kind byte
		data string
	}{
		{0, `{"metadata":{"name":"h-cni-x-eth0","namespace":"default"},"spec":{"node":"h","orchestrator":"cni","workload":"x","endpoint":"eth0","interfaceName":"cali/../all","ipNetworks":["10.65.0.2/32"]}}`},
		{0, `{"metadata":{"name":"h-cni-y-eth0","namespace":"default","labels":{"app":"web"}},"spec":{"node":"h","orchestrator":"cni","workload":"y","endpoint":"eth0","interfaceName":"cali2","ipNetworks":["10.65.0.3/32","fd00::3/128"],"profiles":["p1"]}}`},
		{1, `{"metadata":{"name":"hep"},"spec":{"node":"h","interfaceName":"..","expectedIPs":["192.0.2.1"]}}`},
		{1, `{"metadata":{"name":"hep"},"spec":{"node":"h","interfaceName":"*"}}`},
		{2, `{"metadata":{"name":"ns","namespace":"default","labels":{"a":"b"}},"spec":{"nets":["10.0.0.0/8","300.0.0.0/8"]}}`},
		{3, `{"metadata":{"name":"gns","labels":{"a":"b"}},"spec":{"nets":["fd00::/8"]}}`},
		{4, `{"metadata":{"name":"np","namespace":"default"},"spec":{"selector":"app == 'web'","egress":[{"action":"Allow","destination":{"services":{"name":"db"}}}]}}`},
		{5, `{"metadata":{"name":"gnp"},"spec":{"selector":"app == 'web'","ingress":[{"action":"Allow","protocol":"TCP","http":{"methods":["GET"]}}]}}`},
		{5, `{"metadata":{"name":"gnp"},"spec":{"selector":"app ==","ingress":[{"action":"Explode"}],"types":["Sideways"]}}`},
		{5, `{"metadata":{"name":"gnp"},"spec":{"tier":"sec","order":10,"selector":"has(app)","ingress":[{"action":"Deny","source":{"selector":"a == 'b'","nets":["10.0.0.0/8"]}}],"egress":[{"action":"Pass"}]}}`},
		{6, `{"metadata":{"name":"sec"},"spec":{"order":5,"defaultAction":"Explode"}}`},
		{7, `{"metadata":{"name":"p1"},"spec":{"ingress":[{"action":"Allow","http":{"paths":[{"exact":"/"}]}}],"labelsToApply":{"-bad":"x"}}}`},
		{8, `{"metadata":{"name":"default"},"spec":{"wireguardEnabled":true,"logPrefix":"x","failsafeInboundHostPorts":[{"protocol":"gre","port":1}]}}`},
		{9, `{"metadata":{"name":"pool"},"spec":{"cidr":"10.65.0.0/16","ipipMode":"Always"}}`},
		{9, `{"metadata":{"name":"pool"},"spec":{"cidr":"10.65.0.0/16","natOutgoing":true}}`},
		{10, `{"metadata":{"name":"b"},"spec":{"node":"h","cidr":"10.65.0.0/26","state":"confirmed"}}`},
		{0, `{"metadata":{"name":"","namespace":""}}`},
		{5, `null`},
		{7, `{"spec":{"ingress":[null,{}]}}`},
	} {
		f.Add(seed.kind, []byte(seed.data))
	}
	kinds := calc.Kinds()
	f.Fuzz(func(t *testing.T, k byte, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		obj, err := decodeStored(kind, data)
		if err != nil {
			return // the syncer reports an undecodable entry and goes on
		}
		// Validation itself, outside check's recover, so that a panic in
		// it is found here rather than hidden as a rejection.
		obj.SetDefaults()
		_ = api.Validate(obj)
		key := api.KeyOf(obj)
		if key.Name == "" {
			key.Name = "fuzz" // the syncer's key comes from the storage path
		}
		s := newState()
		reg := NewRegistry()
		f := NewFilter(calc.New(host, s, nil), reg, nil)
		f.OnUpdates(added(objects(t, base)...))
		f.OnStatus(datastore.InSync)
		for _, typ := range []datastore.EventType{datastore.Added, datastore.Modified} {
			o, _ := decodeStored(kind, data)
			f.OnUpdates([]datastore.Update{{Type: typ, Key: key, Object: o, Revision: 2}})
			rejected := len(reg.List()) > 0
			for _, w := range s.weps {
				if !netconst.ValidInterfaceName(w.InterfaceName) {
					t.Fatalf("an endpoint with interface %q reached the dataplane", w.InterfaceName)
				}
				if rejected && string(w.ID) == key.Namespace+"/"+key.Name {
					t.Fatalf("the rejected endpoint %s was programmed", key)
				}
			}
			for _, h := range s.heps {
				if h.InterfaceName != "*" && h.InterfaceName != "" && !netconst.ValidInterfaceName(h.InterfaceName) {
					t.Fatalf("a host endpoint with interface %q reached the dataplane", h.InterfaceName)
				}
				if rejected && string(h.ID) == key.Name {
					t.Fatalf("the rejected host endpoint %s was programmed", key)
				}
			}
			if rejected && strings.HasSuffix(kind, "NetworkPolicy") {
				for id, p := range s.policies {
					if id.Kind != kind || !strings.HasSuffix(id.Name, key.Name) {
						continue
					}
					for _, r := range append(p.InboundRules, p.OutboundRules...) {
						if r.Action != "Deny" {
							t.Fatalf("the rejected policy %s came out with a %s rule", key, r.Action)
						}
					}
				}
			}
		}
		f.OnUpdates([]datastore.Update{{Type: datastore.Deleted, Key: key, Revision: 3}})
		if len(reg.List()) != 0 {
			t.Fatalf("a deleted object is still reported: %+v", reg.List())
		}
	})
}
