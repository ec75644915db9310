/*
 * blas: makes sure OpenBLAS runs the kernels this CPU deserves.
 *
 * Debian's OpenBLAS 0.3.21 picks its kernels when the library loads,
 * before main(), and does not recognise some AVX-512 CPUs (recent AMD
 * EPYC among them): it falls back to AVX2 ("Haswell") kernels at about
 * half the sgemm speed.  The only reliable fix is the OPENBLAS_CORETYPE
 * variable, read at load time, so a program that finds the wrong kernels
 * sets it and re-executes itself once.  Users who set the variable
 * themselves are left alone.
 */
#ifndef SINKD_BLAS_H
#define SINKD_BLAS_H

/*
 * Call first thing in main().  Returns normally when nothing needs doing
 * or the re-exec failed (then the slower kernels are used); otherwise
 * does not return.
 */
void blas_prepare(char **argv);

/* The kernel family OpenBLAS runs ("SkylakeX", "Haswell", ...). */
const char *blas_corename(void);

#endif
