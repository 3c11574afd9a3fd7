# takes f(t) = cos(...) instead of cos^2(...): alpha_bar_t / alpha_bar_{t-1} = cos(t) / cos(t-1)
/^static void schedule_betas(/,/^}/ s|double b = 1\.0 - (root_f \* root_f) / (root_f_prev \* root_f_prev);|double b = 1.0 - root_f / root_f_prev;|
