"""Synthesize the deployment: ``python -m infra.main`` (``make synth``) writes Terraform JSON to ``cdktf.out/``.

Builds the function archives first (``infra.package``), so the stack always
points at archives named by their current content hash. Then, with a Google
Cloud project and Terraform or OpenTofu:

    cd cdktf.out/stacks/memegen
    terraform init && terraform apply -var project=MY-PROJECT
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cdktn import App

from infra.package import FUNCTIONS, ROOT, build
from infra.stack import MemeGenStack


def archives(out: Path) -> dict[str, Path]:
    """Build every function's archive into ``out``; function name -> archive."""
    return {function: build(function, out).path for function in FUNCTIONS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, default=ROOT / "build" / "package")
    parser.add_argument("--outdir", type=Path, default=ROOT / "cdktf.out")
    args = parser.parse_args(argv)
    app = App(outdir=str(args.outdir))
    MemeGenStack(app, "memegen", archives=archives(args.package_dir))
    app.synth()
    print(f"synthesized {args.outdir / 'stacks' / 'memegen' / 'cdk.tf.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
