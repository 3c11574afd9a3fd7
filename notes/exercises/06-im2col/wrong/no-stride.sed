# both functions forget the stride (consistently: gradcheck passes, refcheck does not)
/^static void im2col_reference(/,/^}/ s/int y = oy \* stride + k \/ K - K \/ 2, x = ox \* stride + k % K - K \/ 2;/int y = oy + k \/ K - K \/ 2, x = ox + k % K - K \/ 2;/
/^static void col2im(/,/^}/ {
s/int y = oy \* stride + ky - pad;/int y = oy + ky - pad;/
s/int x = ox \* stride + kx - pad;/int x = ox + kx - pad;/
}
