# Shared by scripts/test and scripts/demo: find interpreters, build the venvs.
# Sourced, not run. Expects REPO (the checkout's root) to be set.

VENVS="$REPO/.venvs"

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }

# Print the path of the first interpreter given whose version is at least
# MAJOR.MINOR; print nothing (and fail) if none is.
first_python_at_least() {
    local minimum="$1" candidate
    shift
    for candidate in "$@"; do
        [ -n "$candidate" ] || continue
        # pyenv shims exist for versions that are not selected and fail when
        # run, so the interpreter is run, not just looked up.
        if "$candidate" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$minimum'.split('.'))))" \
            >/dev/null 2>&1; then
            "$candidate" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

pyenv_python() {
    local prefix
    command -v pyenv >/dev/null 2>&1 || return 0
    prefix="$(pyenv prefix "$1" 2>/dev/null)" || return 0
    [ -x "$prefix/bin/python" ] && printf '%s\n' "$prefix/bin/python"
    return 0
}

# Django 6 needs Python 3.12+. DJTASKS_PYTHON_DJ6 names one explicitly.
find_python_dj6() {
    first_python_at_least 3.12 "${DJTASKS_PYTHON_DJ6:-}" \
        "$(pyenv_python 3.13.0)" "$(pyenv_python 3.13)" "$(pyenv_python 3.12)" \
        python3.13 python3.12 python3
}

# Django 5.2 LTS with the django-tasks backport; the lowest Python we support.
find_python_dj52() {
    first_python_at_least 3.11 "${DJTASKS_PYTHON_DJ52:-}" python3.11 "$(pyenv_python 3.11)" python3
}

django_spec() {
    case "$1" in
        dj6) say "django>=6.1,<6.2" ;;
        dj60) say "django>=6.0,<6.1" ;;
        dj52) say "django>=5.2,<5.3 django-tasks>=0.12,<0.13" ;;
    esac
}

# Make .venvs/NAME from PYTHON with djtasks (editable, test and example
# extras) and NAME's Django. Reinstall only when pyproject.toml, the pins,
# the interpreter or the checkout's path changed, so reruns cost nothing.
ensure_venv() {
    local name="$1" python="$2" venv="$VENVS/$1" stamp wanted log
    wanted="$(cat "$REPO/pyproject.toml"; django_spec "$name"; "$python" -VV; say "$REPO")"
    wanted="$(printf '%s' "$wanted" | "$python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    stamp="$venv/.djtasks-stamp"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
        return 0
    fi
    log="$VENVS/$name.install.log"
    say "Installing djtasks with $(django_spec "$name") into .venvs/$name ($("$python" -V)); log: .venvs/$name.install.log"
    mkdir -p "$VENVS"
    rm -rf "$venv"
    # pip's output goes to the log: it is long, and harmless warnings about
    # extra package locations would drown what matters.
    # shellcheck disable=SC2046 # django_spec prints a list of requirements
    if ! { "$python" -m venv "$venv" &&
        (cd "$REPO" && "$venv/bin/python" -m pip install -e ".[test,example]" $(django_spec "$name")); } \
        >"$log" 2>&1; then
        warn "Installing into .venvs/$name failed; the end of $log:"
        tail -n 30 "$log" >&2
        return 1
    fi
    printf '%s\n' "$wanted" >"$stamp"
}

# Install the MariaDB/MySQL driver (the mysql extra) into .venvs/NAME, once:
# it compiles against the client library, which not every machine has, so
# only the legs that need it ask for it.
ensure_mysql_driver() {
    local venv="$VENVS/$1" log="$VENVS/$1.mysqlclient.log"
    "$venv/bin/python" -c 'import MySQLdb' >/dev/null 2>&1 && return 0
    say "Installing mysqlclient into .venvs/$1; log: .venvs/$1.mysqlclient.log"
    (cd "$REPO" && "$venv/bin/python" -m pip install -e ".[test,example,mysql]") >"$log" 2>&1 \
        && "$venv/bin/python" -c 'import MySQLdb' >/dev/null 2>&1
}
