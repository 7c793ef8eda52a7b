"""Unpack a downloaded archive (tar, tar.gz, zip) into a folder, refusing path traversal.

Usage: python -m wespk.bin.unpack [--force] ARCHIVE DEST_DIR

Every member must stay inside DEST_DIR: absolute names, '..' components,
links that leave DEST_DIR, device files and (in zip files) symbolic links
make it stop with one line naming the archive and the member. A marker
DEST_DIR/.unpacked-<archive name> records a finished unpacking, so running it
again does nothing (--force unpacks again); an interrupted run leaves no
marker and is redone.
"""

import argparse
import logging
import sys

from wespk.io.archive import ArchiveError, marker_path, unpack_once

logger = logging.getLogger("wespk.bin.unpack")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--force", action="store_true", help="unpack even when the marker exists")
    parser.add_argument("archive")
    parser.add_argument("dest_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    marker = marker_path(args.archive, args.dest_dir)
    if args.force and marker.exists():
        marker.unlink()
    try:
        if unpack_once(args.archive, args.dest_dir):
            logger.info("unpacked %s into %s", args.archive, args.dest_dir)
        else:
            logger.info("%s was already unpacked into %s (%s)", args.archive, args.dest_dir, marker)
    except ArchiveError as e:
        print(f"wespk.bin.unpack: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
