-- Typed CSV straight into a frame, filtered in C, then per-group statistics.
-- Expects columns region (string), amount (number).
return {
  map = function(input, ctx)
    return input:frame():filter("amount", ">", 0):select("region", "amount")
  end,
  reduce = function(f, ctx)
    local r = f:group_by("region"):agg{
      orders = count(), total = sum("amount"), avg = mean("amount"),
      p50 = median("amount"), p90 = quantile("amount", 0.9),
    }
    return r:sort_by({"total", "desc"})
  end,
}
