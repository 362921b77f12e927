"""The build core: plan what to run, run it, cache it, record it. See README.md here.

    graph.py      pure: typed node ids, each node's declared inputs, its key
    inputs.py     read-only: identities the keys need (engine, code, models, LoRA, dataset)
    status.py     read-only: graph vs cache vs lock -> cached / to-run and why (plan, dry run)
    stages/       one module per node kind: declared inputs -> bytes
    executors/    where stages run: local (default), ray
    run.py        the walk: execute, verify, commit, write outputs, write the lock last
    outputs.py    build/<id>/ files
    lockfile.py   <story>.lock
"""
