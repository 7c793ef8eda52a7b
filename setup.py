from setuptools import find_packages, setup

setup(
    name="wespk",
    version="0.1.0",
    description="Speaker embedding toolkit: Kaldi-style recipes, WeSpeaker-compatible models",
    packages=find_packages(include=["wespk", "wespk.*"]),
    python_requires=">=3.9",
    license="Apache-2.0",
    entry_points={"console_scripts": ["wespk = wespk.cli:main"]},
)
