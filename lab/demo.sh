#!/usr/bin/env bash
# The demo of the Project Calico talk, for real, on this machine: two hosts,
# five containers, two policy groups, a top-of-rack router, all in network
# namespaces built by serval-lab. Run it with `make demo` (as root).
#
# It shows only what really happens. It exits 0 only if everything it showed
# was as expected; 1 if something was not; 3 if the demo could not be shown
# whole because a part of Serval is not built yet (it says which).
#
# KEEP=1 leaves the lab running afterwards (remove it with
# `bin/serval-lab down --name demo`).
set -uo pipefail

cd "$(dirname "$0")/.."
LAB=bin/serval-lab
export SERVAL_LAB=demo
failures=0
incomplete=0

heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*" | fold -s -w 100; }
ok() { printf '   \033[32mOK\033[0m %s\n' "$*"; }
bad() {
	printf '   \033[31mNOT AS EXPECTED\033[0m %s\n' "$*"
	failures=$((failures + 1))
}
# show INDENT CMD...: runs CMD and prints its output indented (and keeps it
# in $shown); a command that fails is a failure of the demo, said so, not
# hidden by the pipe.
shown=
show() {
	local indent=$1 rc
	shift
	shown=$("$@" 2>&1)
	rc=$?
	[[ -n $shown ]] && printf '%s\n' "$shown" | sed "s/^/$indent/"
	if ((rc != 0)); then
		bad "'$*' failed (exit status $rc)"
	fi
	return $rc
}
missing() {
	printf '   \033[33mNOT AVAILABLE YET\033[0m %s\n' "$*"
	incomplete=1
}

if [[ $(id -u) -ne 0 ]]; then
	echo "demo: run it as root (it builds network namespaces): sudo make demo" >&2
	exit 2
fi
for b in servalctl serval serval-ipam serval-lab; do
	[[ -x bin/$b ]] || { echo "demo: bin/$b is missing: run 'make build' first" >&2; exit 2; }
done
agent=0
[[ -x bin/serval-node ]] && agent=1

cleanup() {
	if [[ ${KEEP:-0} == 1 ]]; then
		heading "The lab stays up (KEEP=1): remove it with 'bin/serval-lab down --name demo'"
		return
	fi
	heading "Cleaning up: removing every namespace, process and file of the lab"
	$LAB down --name demo 2>&1 | sed 's/^/   /'
}

heading "Serval demo: a data center like the Internet"
say "Two Linux hosts, 172.17.8.101 and 172.17.8.102, each a router, on one L2 segment with a top-of-rack router (BIRD, AS 64513). Containers A 192.168.1.1, B .2 and C .3 run on the first host, D .4 and E .5 on the second. Policy group GROUP1 = A, C, E; GROUP2 = B, D (Calico profiles, lab/demo-groups.yaml)."
if ((agent == 0)); then
	say ""
	say "NOTE: serval-node (the per-host agent, issues 4 and 5) is not built yet in this tree. Without it there is no BGP, no cross-host routing and no policy enforcement. The demo builds everything else for real and shows what that gives, and says so wherever the agent is missing. It cannot show the talk's demo in full and will end with exit status 3."
fi

heading "Building the lab (serval-lab up -f lab/demo.yaml)"
$LAB down --name demo >/dev/null 2>&1 || true
trap cleanup EXIT
if ! $LAB up -f lab/demo.yaml 2>&1 | grep -v 'level=INFO msg="addresses allocated"\|msg="workload attached"' | sed 's/^/   /'; then
	echo "demo: the lab did not come up" >&2
	exit 1
fi
[[ -f /run/serval-lab/demo/state.json ]] || { echo "demo: the lab did not come up" >&2; exit 1; }

heading "What is running (serval-lab status)"
show '   ' $LAB status

heading "BGP sessions on both hosts"
if ((agent)); then
	for h in host1 host2; do
		echo "   -- $h (servalctl node status):"
		if show '      ' $LAB exec $h -- bin/servalctl node status; then
			ready=$(grep '^Ready:' <<<"$shown")
			if [[ $ready == "Ready: yes"* ]]; then
				ok "serval-node on $h is live and ready"
			else
				bad "serval-node on $h: $ready"
			fi
		fi
	done
	if $LAB status | grep -E '^ *host[12] +BGP .* Established' | grep -c . | grep -q '^2$'; then
		ok "the router has an established session with both hosts"
	else
		bad "the router does not have established sessions with both hosts"
	fi
else
	missing "no BGP speaker runs on the hosts: BGP is part of serval-node. The router waits (state 'Active'):"
	$LAB status | grep -E '^ +(Name|host[12]) ' | sed 's/^ */      /'
fi

heading "Each host's routes (ip route)"
say "Look for: a /32 route to each local container on its cali* interface, and the other host's containers via the other host (172.17.8.10x), learned by BGP."
for h in host1 host2; do
	echo "   -- $h:"
	show '      ' $LAB exec $h -- ip -4 route
done
if ((agent)); then
	if $LAB exec host1 -- ip -4 route | grep -E '^192\.168\.1\.[0-9./]+ .*via 172\.17\.8\.102' >/dev/null &&
		$LAB exec host2 -- ip -4 route | grep -E '^192\.168\.1\.[0-9./]+ .*via 172\.17\.8\.101' >/dev/null; then
		ok "each host routes to the other's containers via the other host"
	else
		bad "a host has no route to the other host's containers via that host"
	fi
else
	missing "no route to the other host's containers: routes between hosts come from serval-node's BGP"
fi

heading "Ping matrix: who reaches whom (rows FROM, columns TO)"
if ((agent)); then
	say "Expected: members of a group reach each other, across hosts too; nobody reaches the other group."
	if $LAB matrix --proto icmp --expect lab/demo-expect-groups.txt 2>&1 | sed 's/^/   /'; then ok "policy groups isolate as in the talk"; else bad "the ping matrix differs (above)"; fi
else
	say "Without serval-node: containers on one host reach each other (the CNI plugin's /32 routes and proxy ARP) with NO policy at all; nothing crosses hosts."
	if $LAB matrix --proto icmp --expect lab/demo-expect-no-agent.txt 2>&1 | sed 's/^/   /'; then
		ok "what CNI alone gives, as expected"
	else
		bad "the ping matrix differs (above)"
	fi
	missing "group isolation and cross-host reachability need serval-node"
fi

heading "traceroute from A to E: plain IP hops, no tunnel"
$LAB exec A -- traceroute -n -I -w 1 -q 1 -m 5 192.168.1.5 2>&1 | tee /tmp/serval-demo-traceroute.$$ | sed 's/^/   /'
if ((agent)); then
	if grep -q ' 172\.17\.8\.101 ' /tmp/serval-demo-traceroute.$$ && grep -q ' 172\.17\.8\.102 ' /tmp/serval-demo-traceroute.$$ && grep -q ' 192\.168\.1\.5 ' /tmp/serval-demo-traceroute.$$; then
		ok "A -> host1 -> host2 -> E: every hop a plain IP router"
	else
		bad "the path is not host1, host2, E"
	fi
else
	missing "the first hop is host1 (172.17.8.101); beyond it there is no route to E without serval-node"
fi
rm -f /tmp/serval-demo-traceroute.$$

heading "Web traffic before the policy change (tcp/80)"
if ((agent)); then
	if $LAB matrix --proto tcp --port 80 --expect lab/demo-expect-groups.txt 2>&1 | sed 's/^/   /'; then ok "tcp/80 follows the groups too"; else bad "the tcp/80 matrix differs (above)"; fi
else
	show '   ' $LAB matrix --proto tcp --port 80
fi

heading "Live policy change: GROUP2 may reach GROUP1 on tcp/80 (lab/demo-policy.yaml)"
sed 's/^/   /' lab/demo-policy.yaml
show '   ' $LAB servalctl apply -f lab/demo-policy.yaml
if ((agent)); then
	sleep 1
	say "Expected now: B and D reach A, C and E on tcp/80; A, C and E still do not reach B or D."
	if $LAB matrix --proto tcp --port 80 --expect lab/demo-expect-web.txt 2>&1 | sed 's/^/   /'; then ok "the change took effect on both hosts"; else bad "the tcp/80 matrix after the change differs (above)"; fi
	say "And ping is still as before (the new policy allows only tcp/80):"
	if $LAB matrix --proto icmp --expect lab/demo-expect-groups.txt 2>&1 | sed 's/^/   /'; then ok "ping unchanged"; else bad "the ping matrix after the change differs (above)"; fi
else
	missing "the policy is stored in the datastore, but nothing enforces it: policy is programmed by serval-node"
fi

heading "Summary"
if ((failures > 0)); then
	echo "   $failures thing(s) were not as expected (marked above)."
	exit 1
fi
if ((incomplete)); then
	echo "   Everything shown was as expected, but the demo is INCOMPLETE: serval-node is not built yet,"
	echo "   so BGP, cross-host routing and policy could not be shown (marked NOT AVAILABLE YET above)."
	exit 3
fi
echo "   Everything was as expected."
exit 0
