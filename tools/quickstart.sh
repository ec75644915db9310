#!/bin/sh
# Fresh Debian 12 to generated text: installs dependencies, builds into
# build/, and generates from the model in $SINKD_MODEL (default
# ../shared/models/stories260K.gguf).  Extra arguments go to sinkd-run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh"
"$top/tools/build.sh" build
cd "$top"
if [ $# -eq 0 ]; then
	set -- -p "Once upon a time" -n 200
fi
exec build/sinkd-run "$@"
