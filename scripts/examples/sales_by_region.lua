-- Group-by over CSV: orders per region and product with count, total and p90 of the
-- amount. The mappers parse the CSV straight into a typed frame (input:frame(), in C)
-- and keep only the columns the reducer needs; the reducer does the wide work.
return {
  map = function(input, ctx)
    return input:frame():select("region", "product", "amount")
  end,

  reduce = function(f, ctx)
    return f:group_by("region", "product")
            :agg{ orders = count(), total = sum("amount"), p90 = quantile("amount", 0.9) }
            :sort_by("region", "product")
  end,
}
