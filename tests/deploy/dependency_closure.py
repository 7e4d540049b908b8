#!/usr/bin/python3
"""Checks that the configured build uses nothing that deploy/install-deps.sh
does not install.

Every file the build resolved outside the source and build trees -- the
headers compiled objects included (ninja's dependency log), the libraries on
the link lines, the files and folders CMakeCache.txt names -- must belong (by
`dpkg -S`) to a package that install-deps.sh installs, or to one of their
dependencies (`apt-cache depends --recurse`). A file that belongs to no such
package is one that a fresh machine would not have: the check fails, naming
it and its package.

    dependency_closure.py SOURCE_DIR BUILD_DIR
"""
import os
import re
import subprocess
import sys


def run(*command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def closure(packages):
    """Names of the packages and everything they depend on, recursively
    (alternatives and virtual packages included)."""
    text = run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
               "--no-breaks", "--no-replaces", "--no-enhances", *packages)
    names = set(packages)
    for line in text.splitlines():
        match = re.match(r"^\s*\|?(?:Pre)?Depends:\s*<?([^\s>]+)>?", line) or re.match(r"^<?([^\s>]+)>?$", line)
        if match:
            names.add(match.group(1).split(":")[0])
    return names


def header_paths(build_dir):
    text = run("ninja", "-C", build_dir, "-t", "deps")
    return {line.strip() for line in text.splitlines() if line.startswith(" ") and line.strip().startswith("/")}


def link_paths(build_dir):
    paths, names = set(), set()
    with open(os.path.join(build_dir, "build.ninja")) as ninja:
        for line in ninja:
            if not line.lstrip().startswith("LINK_LIBRARIES = "):
                continue
            for token in line.split("=", 1)[1].split():
                token = token.split(",")[-1].strip('"')  # -Wl,--no-as-needed,"/usr/lib/..."
                if token.startswith("/"):
                    paths.add(token)
                elif token.startswith("-l"):
                    names.add(token[2:])
    for name in names:  # -lfoo: the file the compiler driver finds
        for candidate in ("lib%s.so" % name, "lib%s.a" % name):
            found = run("g++", "-print-file-name=" + candidate).strip()
            if found.startswith("/"):
                paths.add(os.path.normpath(found))
                break
    return paths


def cache_paths(build_dir):
    paths = set()
    with open(os.path.join(build_dir, "CMakeCache.txt")) as cache:
        for line in cache:
            match = re.match(r"^([^#/][^:]*):(FILEPATH|PATH)=(/.*)$", line.strip())
            # Not installed by any package: where `make install` would go,
            # and the optional outputs of the official DETR for parity tests.
            if match and match.group(1) not in ("CMAKE_INSTALL_PREFIX", "DETR_FIXTURES_DIR") and \
                    os.path.exists(match.group(3)):
                paths.add(os.path.normpath(match.group(3)))
    return paths


def dpkg_owners(paths):
    """path -> packages that own it, by dpkg -S; unowned paths are absent."""
    result = {}
    batch = sorted(paths)
    for i in range(0, len(batch), 2000):
        out = subprocess.run(["dpkg", "-S", *batch[i:i + 2000]], capture_output=True, text=True).stdout
        for line in out.splitlines():
            packages, _, path = line.partition(": ")
            if path in paths:
                result.setdefault(path, set()).update(p.split(":")[0] for p in packages.split(", "))
    return result


def owners(paths):
    """path -> packages that own it: the path itself or its /usr-merged alias
    (Debian 12 ships some files under /lib and links them from /usr/lib);
    only for a path that no package owns, its real path (a link made by
    update-alternatives, say)."""
    def merged_aliases(path):
        return {path, re.sub(r"^/usr/(lib|bin|sbin)/", r"/\1/", path), re.sub(r"^/(lib|bin|sbin)/", r"/usr/\1/", path)}

    def resolve(candidates):
        found = dpkg_owners({alias for aliases in candidates.values() for alias in aliases})
        return {path: set().union(*(found.get(alias, set()) for alias in aliases)) for path, aliases in candidates.items()}

    owned = resolve({path: merged_aliases(path) for path in paths})
    unowned = [path for path, packages in owned.items() if not packages]
    owned.update(resolve({path: merged_aliases(os.path.realpath(path)) for path in unowned}))
    return owned


def main(source_dir, build_dir):
    source_dir, build_dir = os.path.realpath(source_dir), os.path.realpath(build_dir)
    packages = run("bash", os.path.join(source_dir, "deploy/install-deps.sh"), "--list").split()
    allowed = closure(packages)
    used = header_paths(build_dir) | link_paths(build_dir) | cache_paths(build_dir)
    used = {p for p in used if not p.startswith((source_dir + "/", build_dir + "/")) and p not in (source_dir, build_dir)}
    owned = owners(used)
    missing = {path: sorted(owned.get(path, [])) for path in used if not owned.get(path, set()) & allowed}
    print("install-deps.sh installs %d packages; with their dependencies %d. The build used %d files and folders "
          "outside its trees." % (len(packages), len(allowed), len(used)))
    for path, packages_of in sorted(missing.items()):
        print("NOT COVERED: %s (belongs to: %s)" % (path, ", ".join(packages_of) or "no package"))
    if missing:
        print("%d path(s) come from packages that install-deps.sh neither installs nor depends on." % len(missing))
        return 1
    print("every one belongs to a package install-deps.sh installs or depends on")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
