"""Review a change to a story collection: `kolorsc diff` (what changed between a git
revision and the working tree, per story and panel, and which renders are new) and its
side-by-side HTML page. A library: nothing here prints or exits.

    diff(args, cwd=..., engine=..., cache_dir=..., models_dir=...) -> DiffReport   (diff.py)
    as_text(report) -> str                                                          (present.py)
    write_html(report, out_dir) -> Path                                             (html.py)

Modules: git.py (reads the revision with git plumbing), compare.py (story/panel fields),
keys.py (the only adapter to the build core: render keys, lock files, cache lookups).
"""
