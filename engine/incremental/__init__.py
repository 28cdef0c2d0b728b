"""The incremental steady pass: look again only at what may have changed.

`dirs.DirectoryCache` lets a local endpoint's listing reuse every folder whose own stat (mtime,
ctime, inode, device) is what it was when it was last read, so a steady pass stats a few
hundred folders instead of every file. `view.IncrementalView` decides, pass by pass, whether
the caches may be used at all (never for `--dry-run` or `--reconcile --once`, which build a
fresh reconciler, and never on the periodic full walk, `[safety] full_walk_seconds`).
`gc_policy` keeps cyclic garbage collection from re-scanning the long-lived state each pass.

The incremental view decides only what is *looked at*: the last look before a delete lists and
re-hashes every copy involved afresh (`engine.last_look`, `LocalStorage.stat_scan`), never
through these caches.
"""
