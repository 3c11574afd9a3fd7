# the issue's case 4: the forward's collapse(2) copied onto groupnorm_backward: threads of one group race on dgamma and dbeta (found only with -fopenmp)
/^static void groupnorm_backward(/,/^}/ s/^#pragma omp parallel for schedule(static)$/#pragma omp parallel for collapse(2) schedule(static)/
