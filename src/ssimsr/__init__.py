"""ssimsr: normalised-SSIM-loss super-resolution, rebuilt as a Snakemake workflow."""

__version__ = "0.1.0"
