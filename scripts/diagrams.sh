#!/usr/bin/env bash
# Draws the rendered PlantUML diagrams (generated/diagrams/*.puml) as SVG into
# docs/diagrams/, for the README. Needs plantuml and Graphviz (Debian: plantuml graphviz;
# bash scripts/test-env.sh installs both). A test keeps the SVGs current.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/docs/diagrams"
mkdir -p "$out"
for source in "$root"/generated/diagrams/*.puml; do
  plantuml -tsvg -o "$out" "$source"
done
ls "$out"
