# the issue's case 4: the forward's collapse(2) copied onto the backward's loop over groups (threads of one group
# would race on dgamma and dbeta). That loop is now groupnorm_silu_backward's, in PART II, outside the exercise's
# functions: grade.sh's comparison with a fresh stub refuses the change before anything runs.
/^static void groupnorm_silu_backward(/,/^}/ s/^#pragma omp parallel for schedule(static)$/#pragma omp parallel for collapse(2) schedule(static)/
