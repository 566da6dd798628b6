"""Documents generated from code (docs/asyncapi.yaml, docs/openapi.json): print them, or `--write` them."""

import argparse
import sys


def main(render, output, description, argv=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help=f"write {output} instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    else:
        sys.stdout.write(text)
