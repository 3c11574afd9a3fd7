# the issue's case 1: no gradient code (the stub's empty bodies) and gradcheck loosened: a macro at the end of the file makes notes/check.c divide every error by 1e30
/^static void silu_backward(/,/^}/ { /^#pragma omp/d; /^    for (size_t i/,/^    }$/d; }
/^static void groupnorm_group_backward(/,/^}/ { /^    double mean_dxhat = 0/,/^        }$/c\
    (void)dx, (void)dgamma, (void)dbeta, (void)dy, (void)x, (void)m, (void)r, (void)gamma;\
    (void)cg, (void)N;
}
$a\
#define fmax(a, b) 1e30
