# the score as -eps / (1 - alpha_bar) instead of -eps / sqrt(1 - alpha_bar)
/^static void sde_step(/,/^}/ s|score_scale = 1 / sqrt(one_minus_alpha_bar)|score_scale = 1 / one_minus_alpha_bar|
