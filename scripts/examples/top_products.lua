-- Revenue per product, best first, in bounded memory whatever the input's size: map reads
-- its CSV a batch at a time (input:frames()) and emits the rows it keeps, which the engine
-- writes out while map runs; the declared reduce is combined on the map side and merged
-- by two reducers; order_by sorts the whole output (an external sort) into one file.
return {
  map = function(input, ctx)
    for f in input:frames() do
      ctx:emit(f:filter("quantity", ">", 0):select("product", "amount"))
    end
  end,

  reduce = { group_by = {"product"},
             agg = { orders = count(), revenue = sum("amount"), p90 = approx_quantile("amount", 0.9) } },

  order_by = { {"revenue", "desc"}, "product" },
}
