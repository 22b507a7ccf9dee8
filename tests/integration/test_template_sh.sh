#!/usr/bin/env bash
# Hostile values rendered into a template and run by real shells (dash as
# sh, and bash, both as a file and on stdin the way the engine sends node
# scripts) come back byte for byte, and nothing in them is executed.
# Also: the renderer's refusals leave nothing on stdout.
set -euo pipefail

root=${DBPKI_ROOT:?DBPKI_ROOT}
build=${DBPKI_BUILD:?DBPKI_BUILD}
render=$build/tools/tplrender
[ -x "$render" ] || { echo "missing $render (make $render)"; exit 1; }

work=$(mktemp -d /tmp/dbpki-tplsh.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A glob must not expand: give it files to match.
mkdir "$work/run"
touch "$work/run/a" "$work/run/b"
p=$work/pwned

vals=(
	"db1; rm -rf /nonexistent; touch $p.1"
	"\$(touch $p.2)"
	"\`touch $p.3\`"
	"it's"
	"'"
	"''; touch $p.4; echo ''"
	"a'; touch $p.5; echo '"
	"\"double\" \"quotes\""
	"back\\slash\\"
	"  spaces  inside  "
	"*"
	"run/*"
	""
	"\$HOME \${PATH} \$((1+1)) !! ~ #x"
	"| touch $p.6 &"
	"> $p.7"
	"-n"
	"--"
	"%s%n%d"
	"caf$(printf '\303\251') $(printf '\342\202\254')"
	"\\'\\\\'"
)

# The template: each value printed in argument position, and once more via
# an assignment, the two contexts node scripts use.
tpl=$work/t.sh
args=()
{
	echo '#!/bin/sh'
	echo 'set -eu'
	for i in "${!vals[@]}"; do
		echo "printf '%s\\n' {{v$i}}"
		echo "x={{v$i}}; printf '%s\\n' \"\$x\""
		args+=("v$i" "${vals[$i]}")
	done
	echo "echo END"
} >"$tpl"

"$render" "$tpl" "${args[@]}" >"$work/script.sh" ||
	fail "rendering the hostile values failed"

{
	for v in "${vals[@]}"; do
		printf '%s\n%s\n' "$v" "$v"
	done
	echo END
} >"$work/want"

for shell in sh bash; do
	(cd "$work/run" && "$shell" "$work/script.sh") >"$work/got.$shell" ||
		fail "$shell exited non-zero"
	cmp "$work/want" "$work/got.$shell" ||
		{ diff "$work/want" "$work/got.$shell" >&2 || true; fail "$shell: output differs"; }
	(cd "$work/run" && "$shell" -s <"$work/script.sh") >"$work/gots.$shell" ||
		fail "$shell -s exited non-zero"
	cmp -s "$work/want" "$work/gots.$shell" || fail "$shell -s: output differs"
done
if compgen -G "$p*" >/dev/null; then
	fail "a value was executed: $(ls "$p"*)"
fi
[ "$(ls "$work/run")" = "$(printf 'a\nb')" ] || fail "run/ changed"
echo "ok: ${#vals[@]} hostile values round-trip through sh and bash"

# Refusals: the message names the template and line, nothing is printed.
expect_refusal() {
	local want=$1
	shift
	if "$render" "$@" >"$work/out" 2>"$work/err"; then
		fail "accepted: $*"
	fi
	[ ! -s "$work/out" ] || fail "partial output for: $*"
	grep -qF -- "$want" "$work/err" ||
		fail "message for $* is '$(cat "$work/err")', want '$want'"
}

printf 'echo ok\n\necho {{nope}}\n' >"$work/unknown.sh"
expect_refusal "$work/unknown.sh:3: unknown slot {{nope}}; this action provides: v" \
	"$work/unknown.sh" v 1
printf 'echo {{v}}\necho {{v\n' >"$work/unterminated.sh"
expect_refusal "$work/unterminated.sh:2: unterminated" "$work/unterminated.sh" v 1
printf 'echo {{V}}\n' >"$work/badname.sh"
expect_refusal "$work/badname.sh:1: {{V}}: a slot name must be" "$work/badname.sh"
printf 'port = {{!v}}\n' >"$work/raw.sh"
expect_refusal "$work/raw.sh:1: {{!v}}: value \"5432; touch $p.8\" is not a plain word" \
	"$work/raw.sh" v "5432; touch $p.8"
expect_refusal "template slot {{v}}: value has control byte 0x0a at offset 1" \
	"$work/raw.sh" v $'1\n2'
"$render" "$work/raw.sh" v 5432 >"$work/out"
[ "$(cat "$work/out")" = "port = 5432" ] || fail "raw slot: $(cat "$work/out")"
echo "ok: unknown, unterminated, malformed and raw slots refused"

# The directory lookup used by the engine: DBPKI_TEMPLATES/<platform>/<action>.sh.
mkdir -p "$work/templates/lab"
printf '#!/bin/sh\nprintf "%%s\\n" {{node}}\n' >"$work/templates/lab/hello.sh"
out=$(DBPKI_TEMPLATES=$work/templates "$render" -a lab hello node "db1; touch $p.9" | sh)
[ "$out" = "db1; touch $p.9" ] || fail "tpl_render_file: got '$out'"
chmod g+w "$work/templates/lab/hello.sh"
if DBPKI_TEMPLATES=$work/templates "$render" -a lab hello node x >/dev/null 2>"$work/err"; then
	fail "a group-writable template was accepted"
fi
grep -q "writable by group or others" "$work/err" || fail "$(cat "$work/err")"
if compgen -G "$p*" >/dev/null; then
	fail "a value was executed: $(ls "$p"*)"
fi
echo "ok: tpl_render_file through DBPKI_TEMPLATES"
