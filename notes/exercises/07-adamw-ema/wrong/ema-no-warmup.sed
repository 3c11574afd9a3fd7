# the EMA without its warm-up (decay 0.999 from step 1: a short run's average is the initial weights)
/^static double adamw_step(/,/^}/ s|double ema_decay = fmin(h->ema_decay, (1.0 + step) / (10.0 + step));|double ema_decay = h->ema_decay;|
