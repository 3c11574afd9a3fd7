# Adam without its bias corrections (m, v used as they are: the first steps are ~30x too small)
/^static double adamw_step(/,/^}/ s|(mi / bc1) / (sqrt(vi / bc2) + h->eps)|mi / (sqrt(vi) + h->eps)|
