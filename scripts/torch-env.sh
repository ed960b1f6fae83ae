# Sourced by the bench scripts that run the PyTorch reference: installs Debian's python3-torch when missing and
# sets $torch_blas to OpenBLAS's OpenMP build (PyTorch's best profile here; Debian's default threading makes its f32
# 2-3.8x slower), or empty when it cannot be fetched. Needs $work (a scratch folder).
dpkg -s python3-torch >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q python3-torch >/dev/null; }
ma=$(gcc -dumpmachine)
( cd "$work" && apt-get download -q libopenblas0-openmp >/dev/null 2>&1 && dpkg -x libopenblas0-openmp_*.deb fs ) || true
torch_blas="$work/fs/usr/lib/$ma/openblas-openmp"
[ -e "$torch_blas/libblas.so.3" ] || { echo "OpenBLAS OpenMP build not available; PyTorch runs with Debian's default" >&2; torch_blas=""; }
