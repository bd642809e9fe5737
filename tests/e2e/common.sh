# Helpers for the e2e tests (sourced after tests/world/lib.sh).
# assert DESCRIPTION COMMAND [ARGS...]: run COMMAND; ok when it exits 0.
assert() {
	_desc=$1
	shift
	if "$@" >/dev/null 2>&1; then
		ok "$_desc"
	else
		not_ok "$_desc"
	fi
}
# free_port: print a free TCP port on 127.0.0.1.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
