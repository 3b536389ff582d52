#!/usr/bin/env bash
# Compiles the inference core and its JUnit 4 tests with plain javac and runs them:
#   android_demo/core/run_tests.sh [TestClass ...]      (default: every *Test class)
# Needs a JDK (11 or newer) and Debian's junit4 + hamcrest jars in /usr/share/java
# (apt-get install default-jdk-headless junit4).
# GOLDEN_DIR overrides the golden folder (default: src/test/resources/golden).
# CORE_BUILD_DIR keeps the compiled classes there and reuses them when present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

find_jar() {
  local name
  for name in "$@"; do
    if [ -f "/usr/share/java/$name" ]; then
      echo "/usr/share/java/$name"
      return 0
    fi
  done
  echo "run_tests.sh: none of $* found in /usr/share/java (apt-get install junit4)" >&2
  return 1
}
junit="$(find_jar junit4.jar junit.jar)"
hamcrest="$(find_jar hamcrest-core.jar hamcrest.jar hamcrest-all.jar)"
if ! command -v javac >/dev/null; then
  echo "run_tests.sh: javac not found (apt-get install default-jdk-headless)" >&2
  exit 1
fi

if [ -n "${CORE_BUILD_DIR:-}" ]; then
  build="$CORE_BUILD_DIR"
else
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
fi
if [ ! -f "$build/.compiled" ]; then
  javac -nowarn -encoding UTF-8 --release 11 -d "$build/main" src/main/java/org/tfderain/core/*.java
  javac -nowarn -encoding UTF-8 --release 11 -d "$build/test" -cp "$build/main:$junit" \
    src/test/java/org/tfderain/core/*.java
  touch "$build/.compiled"
fi

if [ "$#" -gt 0 ]; then
  classes=("${@/#/org.tfderain.core.}")
else
  mapfile -t classes < <(cd src/test/java && ls org/tfderain/core/*Test.java | sed 's/\.java$//; s#/#.#g')
fi
java -Dtfderain.golden="${GOLDEN_DIR:-$here/src/test/resources/golden}" \
  -cp "$build/main:$build/test:$junit:$hamcrest" org.junit.runner.JUnitCore "${classes[@]}"
