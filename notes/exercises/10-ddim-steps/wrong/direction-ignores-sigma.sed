# the direction term sqrt(1 - alpha_bar_t') eps, without the - sigma^2 (right for eta = 0 only)
/^static void ddim_step(/,/^}/ s/double dir = omabp - var,/double dir = omabp,/
