# Environment of a recipe: wespk's tools on PATH, the repo on PYTHONPATH, and the
# repo's virtual environment (made by tools/install.sh) if present. Every recipe
# dir links to this one file as its path.sh (`ln -s ../../../tools/path.sh path.sh`)
# and sources it from the recipe dir: `. ./path.sh`.
recipe_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# the repo is wherever the recipe's tools/ link points (so a copied recipe works too)
repo_root=$(cd -P "$recipe_root/tools" && cd .. && pwd)
export PATH="$recipe_root/tools:$PATH"
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
if [ -x "$repo_root/.venv/bin/python" ]; then
  export PATH="$repo_root/.venv/bin:$PATH"
fi
