-- Row-at-a-time map with ctx:emit and counters over CSV or JSON-lines records.
local MIN_QTY = 2            -- top-level globals/locals are shared by every task

local function parse_qty(v) return tonumber(v) end

return {
  map = function(input, ctx)
    for rec in input:records() do
      local qty = parse_qty(rec.qty)
      if qty and qty >= MIN_QTY then
        ctx:emit{ name = rec.name, qty = qty }
      else
        ctx:count("skipped")
      end
    end
  end,
  reduce = function(f, ctx)
    local r = f:group_by("name"):agg{ qty = sum("qty"), orders = count() }:sort_by("name")
    return r
  end,
}
