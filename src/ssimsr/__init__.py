"""ssimsr: normalised-SSIM-loss super-resolution, rebuilt as a Snakemake workflow."""


def __getattr__(name: str):
    # The version is written once, in pyproject.toml; read from the installed metadata on demand.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ssimsr")
        except PackageNotFoundError:  # a source tree on sys.path that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'ssimsr' has no attribute {name!r}")
