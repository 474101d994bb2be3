#!/bin/sh
# Print the path of a Python >= 3.12 interpreter, or fail with a hint.
# Order: $VGSSL_PYTHON, python3.13/python3.12/python3 on PATH (pyenv shims that refuse to run are skipped),
# then interpreters installed under pyenv or uv without a shim.
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for cand in "${VGSSL_PYTHON:-}" python3.12 python3.13 python3.14 python3 python; do
  [ -n "$cand" ] || continue
  p=$(command -v "$cand" 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
roots=""
command -v pyenv >/dev/null 2>&1 && roots="$(pyenv root 2>/dev/null)/versions"
roots="$roots ${PYENV_ROOT:-$HOME/.pyenv}/versions $HOME/.local/share/uv/python /usr/local/bin /opt/python"
for root in $roots; do
  [ -d "$root" ] || continue
  for p in $(ls -d "$root"/*3.1[2-9]*/bin/python3 "$root"/python3.1[2-9] 2>/dev/null | sort -V); do
    if ok "$p"; then echo "$p"; exit 0; fi
  done
done
echo "error: vgssl needs Python >= 3.12 and none was found (tried PATH and pyenv/uv installs)." >&2
echo "       Install one (e.g. 'pyenv install 3.12') or set VGSSL_PYTHON=/path/to/python3.12." >&2
exit 1
