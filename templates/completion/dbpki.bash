# bash completion for dbpki(1).  Installed as
# $(BASHCOMPDIR)/dbpki by `make install`.  The command and option lists
# are checked against `dbpki --help` and every `dbpki COMMAND --help` by
# tests/integration/test_install.sh: a new option fails that test until it
# is added here, in _dbpki and in docs/dbpki.1.
_dbpki() {
	local cur prev cmd opts
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	local commands="ca issue csr sign inspect match verify plan bootstrap
		rotate renew status check list revoke issue-client"
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	cmd=${COMP_WORDS[1]}
	case $prev in
	-c | --config | --cert | --prometheus | --signed | --out | -o)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--key-type | -k)
		COMPREPLY=($(compgen -W "ec:P-256 ec:P-384 rsa:3072 rsa:4096" -- "$cur"))
		return
		;;
	--profile)
		COMPREPLY=($(compgen -W "server client" -- "$cur"))
		return
		;;
	--purpose)
		COMPREPLY=($(compgen -W "server client any" -- "$cur"))
		return
		;;
	--stage)
		COMPREPLY=($(compgen -W "1 2 3" -- "$cur"))
		return
		;;
	--status)
		COMPREPLY=($(compgen -W "active superseded revoked" -- "$cur"))
		return
		;;
	--kind)
		COMPREPLY=($(compgen -W "ca server client app signed" -- "$cur"))
		return
		;;
	--reason)
		COMPREPLY=($(compgen -W "unspecified keyCompromise affiliationChanged
			superseded cessationOfOperation privilegeWithdrawn" -- "$cur"))
		return
		;;
	esac
	case $cmd in
	ca) opts="init import export rollover passwd --config --cert --out --stage --old-passphrase-file --new-key --help" ;;
	issue) opts="--config --force --signed --allow-extra-san --help" ;;
	csr) opts="--config --cn --san --key-type --out --force --help" ;;
	sign) opts="--config --profile --out --days --force --help" ;;
	inspect) opts="--json --help" ;;
	match) opts="--help" ;;
	verify) opts="--host --purpose --help" ;;
	plan) opts="--config --help bootstrap rotate renew" ;;
	bootstrap) opts="--config --json --skip-node --help" ;;
	rotate) opts="--config --primary --json --skip-node --help" ;;
	renew) opts="--config --force --json --skip-node --help" ;;
	status) opts="--config --json --help" ;;
	check) opts="--config --warn --crit --json --prometheus --help" ;;
	list) opts="--config --expiring --status --node --kind --json --help" ;;
	revoke) opts="--config --node --kind --reason --crl-only --skip-node --help" ;;
	issue-client) opts="--config --out --dbname --renew-with-cluster --help" ;;
	*) return ;;
	esac
	if [[ $cur == -* ]] || [ "$cmd" = ca ] || [ "$cmd" = plan ]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _dbpki dbpki
