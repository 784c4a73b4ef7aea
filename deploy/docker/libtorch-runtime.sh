#!/bin/sh
# Usage: libtorch-runtime.sh SRC DEST
# Copies the part of a LibTorch install (the PyPI torch wheel's folder, SRC/torch/lib and
# SRC/nvidia) that a CPU binary loads at run time into DEST, with the same layout so the
# binaries' rpath (SRC/torch/lib) and libtorch_cpu.so's own rpath ($ORIGIN/../../nvidia/...)
# resolve when DEST is installed at SRC's path. Leaves out the CUDA kernels (libtorch_cuda*.so),
# the Python bindings and the headers: about 450 MB instead of 1.2 GB.
set -eu
src="$1" dest="$2"
mkdir -p "$dest/torch/lib" "$dest/nvidia/cu13/lib"
for lib in libtorch_cpu.so libc10.so libgomp.so.1; do
  cp -p "$src/torch/lib/$lib" "$dest/torch/lib/$lib"
done
# libtorch_cpu.so links the CUDA runtime and CUPTI stubs even in CPU use.
for lib in libcudart.so.13 libcupti.so.13; do
  cp -p "$src/nvidia/cu13/lib/$lib" "$dest/nvidia/cu13/lib/$lib"
done
