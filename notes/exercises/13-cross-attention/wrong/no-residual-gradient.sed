# the residual's gradient forgotten: out = x + proj(o), but dL/dout is not added into d->in
/^static void cross_attention_backward(/,/^}/ { /^    add_into(d->in, d->out, /d; }
