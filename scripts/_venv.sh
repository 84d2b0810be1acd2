# shellcheck shell=bash
# Shared virtualenv bootstrap, sourced by scripts/serve and scripts/test.
# Expects the caller to have cd'ed to the repository root.
# Creates .venv on first use and (re)installs the project with dev extras
# only when pyproject.toml changed since the last successful install.

_duecall_pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
                echo "$candidate"
                return 0
            fi
        fi
    done
    echo "error: Python >= 3.11 is required (tried python3.11, python3)" >&2
    return 1
}

_duecall_ensure_venv() {
    local python marker wanted
    if [[ ! -x .venv/bin/python ]]; then
        python="$(_duecall_pick_python)"
        echo "Creating virtualenv .venv with $python" >&2
        "$python" -m venv .venv
    fi
    marker=.venv/.duecall-installed
    wanted="$(.venv/bin/python -c \
        'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        pyproject.toml)"
    if [[ -f "$marker" && "$(cat "$marker")" == "$wanted" ]]; then
        return 0
    fi
    echo "Installing duecall (editable, dev extras) into .venv" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$wanted" >"$marker"
}

_duecall_ensure_venv
