# the issue's case 1: no gradient code (the stub's empty bodies) and gradcheck loosened: a macro at the end of the file makes notes/check.c divide every error by 1e30
/^static void silu_backward(/,/^}/ { /^#pragma omp/d; /^    for (size_t i/,/^    }$/d; }
/^static void groupnorm_backward(/,/^}/ { /^    int cg = /,/^        }$/c\
    (void)dinp, (void)dgamma, (void)dbeta, (void)dout, (void)inp, (void)mean, (void)rstd, (void)gamma;\
    (void)B, (void)C, (void)N, (void)G;
}
$a\
#define fmax(a, b) 1e30
