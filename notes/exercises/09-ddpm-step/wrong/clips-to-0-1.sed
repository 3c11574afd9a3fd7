# clips x0_hat to [0, 1] instead of the data's range [-1, 1] (passed the old grader too)
/^static void x0_hat_from_eps(/,/^}/ s/if (clip) v = v < -1 ? -1 : v > 1 ? 1 : v;/if (clip) v = v < 0 ? 0 : v > 1 ? 1 : v;/
