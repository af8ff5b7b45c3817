// OpenBLAS CBLAS interface (Debian libopenblas-dev): cblas_* plus openblas_get_corename / openblas_set_num_threads.
// Only the Tensors module imports this.
#include <cblas.h>
