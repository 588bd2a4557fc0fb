-- A join of two JSON-lines inputs: each mapper reads one file and tags its rows with the
-- dataset it came from; the reducer splits them again and joins orders to users.
local function dataset_of(uri)
  return uri:match("([%w_]+)%.jsonl$")
end

return {
  map = function(input, ctx)
    local f = input:frame()
    return f:with_column("dataset", function() return dataset_of(input.uri) end)
  end,

  reduce = function(f, ctx)
    local users = f:filter("dataset", "==", "users"):select("user_id", "name", "country")
    local orders = f:filter("dataset", "==", "orders"):select("order_id", "user_id", "amount")
    return orders:join(users, { on = "user_id", how = "left" })
                 :group_by("country")
                 :agg{ orders = count(), customers = count_distinct("user_id"),
                       revenue = sum("amount"), median_order = median("amount") }
                 :sort_by({"revenue", "desc"})
  end,
}
