#!/usr/bin/env bash
# The C formatting check (npm run check:format): every .c and .h file under hv/ and guest/
# against .clang-format (the project's style: Linux braces, tabs 8 wide, 120 columns).
#   scripts/check-clang-format.sh          report the files and lines that differ; exit 1 if any
#   scripts/check-clang-format.sh --fix    rewrite them in place (clang-format -i)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format: not installed (apt-get install clang-format; scripts/setup.sh installs it)" >&2
  exit 1
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files 'hv/*.c' 'hv/*.h' 'guest/*.c' 'guest/*.h')
else
  mapfile -t files < <(find hv guest -name '*.[ch]' | sort)
fi

if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  echo "clang-format: ${#files[@]} files formatted"
  exit 0
fi

report=$(clang-format --dry-run "${files[@]}" 2>&1 | grep -- '-Wclang-format-violations' || true)
if [ -z "$report" ]; then
  echo "clang-format: ${#files[@]} files follow .clang-format"
  exit 0
fi
echo "$report" | sed -n '1,20p'
nfiles=$(echo "$report" | cut -d: -f1 | sort -u | wc -l)
nplaces=$(echo "$report" | wc -l)
echo "clang-format: $nplaces places in $nfiles of ${#files[@]} files differ from .clang-format; fix them with: bash scripts/check-clang-format.sh --fix" >&2
exit 1
