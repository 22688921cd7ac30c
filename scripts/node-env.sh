# Source this to put Node 24 first on PATH: the machine's node if it is new enough, else the
# pinned Node (.node-version) from the npm registry's node-linux-<arch> package, fetched once
# into a cache outside the repo (${SLUICE_CACHE_DIR:-~/.cache/sluice}/node-v<version>).
# Bash only; sets no shell options so it is safe to source from scripts with `set -e` or without.

_sluice_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_sluice_want="$(tr -d ' \n' < "$_sluice_root/.node-version")"
_sluice_major="${_sluice_want%%.*}"
_sluice_have="$(node --version 2>/dev/null | sed 's/^v//')"

if [ -n "$_sluice_have" ] && [ "${_sluice_have%%.*}" -ge "$_sluice_major" ] 2>/dev/null; then
  : # the node on PATH is new enough
else
  _sluice_cache="${SLUICE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
  _sluice_dir="$_sluice_cache/node-v$_sluice_want"
  if [ ! -x "$_sluice_dir/bin/node" ]; then
    case "$(uname -m)" in
      x86_64) _sluice_arch=x64 ;;
      aarch64|arm64) _sluice_arch=arm64 ;;
      *) echo "sluice: no Node $_sluice_major package for $(uname -m); install Node >= $_sluice_major yourself" >&2; return 1 2>/dev/null || exit 1 ;;
    esac
    if ! command -v npm >/dev/null 2>&1; then
      echo "sluice: Node $_sluice_major is needed and npm is missing to fetch it: install Node >= $_sluice_major (or any node with npm)" >&2
      return 1 2>/dev/null || exit 1
    fi
    echo "sluice: fetching Node $_sluice_want (node-linux-$_sluice_arch from the npm registry) into $_sluice_dir" >&2
    mkdir -p "$_sluice_cache"
    _sluice_tmp="$(mktemp -d "$_sluice_cache/.node-fetch.XXXXXX")"
    # npm pack checks the tarball's integrity against the registry and honours the user's npm
    # config (registry mirror, proxy, cafile).
    if (cd "$_sluice_tmp" && npm pack --silent "node-linux-$_sluice_arch@$_sluice_want" >/dev/null 2>npm-pack.log) \
       && tar -xzf "$_sluice_tmp"/node-linux-*.tgz -C "$_sluice_tmp" \
       && "$_sluice_tmp/package/bin/node" --version >/dev/null; then
      # rename is atomic: a concurrent fetch either wins or finds the directory in place
      mv -T "$_sluice_tmp/package" "$_sluice_dir" 2>/dev/null || true
      rm -rf "$_sluice_tmp"
    else
      echo "sluice: could not fetch node-linux-$_sluice_arch@$_sluice_want from the npm registry:" >&2
      tail -n 5 "$_sluice_tmp/npm-pack.log" >&2 2>/dev/null
      rm -rf "$_sluice_tmp"
      return 1 2>/dev/null || exit 1
    fi
  fi
  export PATH="$_sluice_dir/bin:$PATH"
fi
# node-gyp builds (node-rdkafka, an optional dependency) against the headers of the node on PATH:
# the npm registry's node package carries them, where node-gyp would fetch them from nodejs.org
_sluice_prefix="$(cd "$(dirname "$(command -v node)")/.." && pwd)"
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$_sluice_prefix/include/node/node.h" ]; then
  export npm_config_nodedir="$_sluice_prefix"
fi
unset _sluice_prefix _sluice_root _sluice_want _sluice_major _sluice_have _sluice_cache _sluice_dir _sluice_arch _sluice_tmp
