# forgets the clip at 0.999: beta_T = 1, alpha_bar_T = 0 (and eq. (2) divides by 0 at t = T)
/^static void schedule_betas(/,/^}/ s/beta\[t\] = b < 0\.999 ? b : 0\.999;/beta[t] = b;/
