/* Built by tests/e2e/test_kernel_paths.py and preloaded (LD_PRELOAD) into a training process, so that one
 * machine can take MKL's code paths for both CPU vendors. MKL asks these three functions which vendor it
 * runs on; the answers below are those of a genuine Intel CPU (AS_INTEL=1) or of an AMD Zen (AS_INTEL=0).
 * The CPU's real instruction sets are left alone. On AMD, MKL reports no Zen CPU while the CNR branch is
 * COMPATIBLE (it then ignores the vendor); the Zen answer asks MKL for that branch and does the same. */
extern int mkl_serv_cbwr_get(int what);

enum { CBWR_QUERY_BRANCH = 1, CBWR_BRANCH_COMPATIBLE = 3 };

int mkl_serv_intel_cpu_true(void) { return AS_INTEL; }
int mkl_serv_intel_cpu(void) { return AS_INTEL; }
int mkl_serv_cpuiszen(void) { return !AS_INTEL && mkl_serv_cbwr_get(CBWR_QUERY_BRANCH) != CBWR_BRANCH_COMPATIBLE; }
